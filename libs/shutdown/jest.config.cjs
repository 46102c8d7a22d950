module.exports = { ...require('../../jest.preset.cjs'), displayName: 'shutdown', rootDir: __dirname };
