// Shared Jest settings: ts-jest in transpile-only mode (type-checking is the `typecheck` target),
// path aliases from tsconfig.base.json, and a generous timeout for component tests that start
// real servers against the real Postgres and Redis.
const { pathsToModuleNameMapper } = require('ts-jest');
const { compilerOptions } = require('./tsconfig.base.json');

module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper: pathsToModuleNameMapper(compilerOptions.paths, { prefix: '<rootDir>/../../' }),
  testMatch: ['**/?(*.)+(test).ts'],
  testTimeout: 30000,
  maxWorkers: 2,
};
