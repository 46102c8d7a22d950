const preset = require('../jest.preset.cjs');
const { pathsToModuleNameMapper } = require('ts-jest');
const { compilerOptions } = require('../tsconfig.base.json');

module.exports = {
  ...preset,
  displayName: 'tools',
  rootDir: __dirname,
  moduleNameMapper: pathsToModuleNameMapper(compilerOptions.paths, { prefix: '<rootDir>/../' }),
  // The rolling update on containers runs after the other tests, alone: `nx run tools:containers`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/zero-downtime/containers-test/'],
};
