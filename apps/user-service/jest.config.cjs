module.exports = { ...require('../../jest.preset.cjs'), displayName: 'user-service', rootDir: __dirname };
