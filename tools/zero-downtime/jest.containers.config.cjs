// The rolling update on containers (`nx run tools:containers`): product-service's image, built as
// users build it, run as two containers behind nginx and replaced one at a time under load. Needs a
// Docker engine (a missing one fails it); runs after the other tests, alone, since it uses the whole machine.
module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'zero-downtime-containers',
  rootDir: __dirname,
  roots: ['<rootDir>/containers-test'],
  moduleNameMapper: require('ts-jest').pathsToModuleNameMapper(require('../../tsconfig.base.json').compilerOptions.paths, { prefix: '<rootDir>/../../' }),
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/../tsconfig.json' }] },
  testTimeout: 300000,
  maxWorkers: 1,
};
