// The container proofs (`nx run infrastructure:containers`): the seven images built from their
// Dockerfiles, run, stopped, pushed to and pulled from a registry, and the compose stack brought up
// and smoke-tested. They need a Docker engine (a missing one fails them) and run one file at a time
// after the other tests (`npm test`), since they use the whole machine.
module.exports = {
  ...require('../jest.preset.cjs'),
  displayName: 'containers',
  rootDir: __dirname,
  roots: ['<rootDir>/containers-test'],
  moduleNameMapper: require('ts-jest').pathsToModuleNameMapper(require('../tsconfig.base.json').compilerOptions.paths, { prefix: '<rootDir>/../' }),
  globalSetup: '<rootDir>/containers-test/global-setup.ts',
  globalTeardown: '<rootDir>/containers-test/global-teardown.ts',
  testTimeout: 300000,
  maxWorkers: 1,
};
