module.exports = { ...require('../../jest.preset.cjs'), displayName: 'health', rootDir: __dirname };
