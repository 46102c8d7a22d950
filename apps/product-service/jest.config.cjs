module.exports = { ...require('../../jest.preset.cjs'), displayName: 'product-service', rootDir: __dirname };
