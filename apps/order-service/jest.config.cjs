module.exports = { ...require('../../jest.preset.cjs'), displayName: 'order-service', rootDir: __dirname };
