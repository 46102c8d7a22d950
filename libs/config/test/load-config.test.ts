import { ConfigError, dataServiceBase, describeConfig, loadConfig, port, z } from '../src';

const schema = z.object({ ...dataServiceBase, PORT: port(3002) });

describe('loadConfig', () => {
  it('when every value is valid, then defaults fill the gaps and values are coerced', () => {
    const config = loadConfig(schema, {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/products',
      PORT: '4000',
    });
    expect(config).toMatchObject({ PORT: 4000, SHUTDOWN_DELAY_MS: 5000, REDIS_URL: 'redis://127.0.0.1:6379', NODE_ENV: 'development' });
  });

  it('when several variables are bad, then one error names every one of them', () => {
    const act = () => loadConfig(schema, { PORT: 'eighty', JWKS_URL: 'not a url', LOG_LEVEL: 'loud' });
    expect(act).toThrow(ConfigError);
    try {
      act();
    } catch (error) {
      const variables = (error as ConfigError).issues.map((i) => i.variable).sort();
      expect(variables).toEqual(['DATABASE_URL', 'JWKS_URL', 'LOG_LEVEL', 'PORT']);
      expect((error as Error).message).toMatch(/DATABASE_URL: is required/);
      expect((error as Error).message).toMatch(/JWKS_URL: /);
    }
  });

  it('when a variable is set to an empty string, then it counts as unset', () => {
    const config = loadConfig(schema, { DATABASE_URL: 'postgres://h/db', PORT: '' });
    expect(config.PORT).toBe(3002);
  });

  it('describes every variable with its default and whether it is required', () => {
    const rows = describeConfig(schema);
    expect(rows.find((r) => r.variable === 'PORT')).toMatchObject({ default: 3002, required: false });
    expect(rows.find((r) => r.variable === 'DATABASE_URL')).toMatchObject({ required: true });
  });
});
