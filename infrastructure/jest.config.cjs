// Infrastructure checks render manifests, run kubectl/promtool/yamllint/shellcheck and start built
// apps as their images would, so they get a longer timeout than component tests.
module.exports = {
  ...require('../jest.preset.cjs'),
  displayName: 'infrastructure',
  rootDir: __dirname,
  moduleNameMapper: require('ts-jest').pathsToModuleNameMapper(require('../tsconfig.base.json').compilerOptions.paths, { prefix: '<rootDir>/../' }),
  testTimeout: 120000,
  // The container proofs run after everything else: jest.containers.config.cjs.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/containers-test/'],
};
