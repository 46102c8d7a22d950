import { z } from 'zod';
import { AppError, fieldIssues, notFound, toAppError } from '../src';

describe('toAppError', () => {
  it('keeps an AppError as it is', () => {
    const error = notFound('Product');
    expect(toAppError(error)).toBe(error);
    expect(error.toJSON()).toEqual({ error: { code: 'not_found', message: 'Product not found' } });
    expect(error.status).toBe(404);
  });

  it('maps body-parser failures to 413 and 400 malformed_json', () => {
    expect(toAppError(Object.assign(new Error('big'), { type: 'entity.too.large', status: 413 })).status).toBe(413);
    const malformed = toAppError(Object.assign(new SyntaxError('Unexpected token'), { type: 'entity.parse.failed', status: 400 }));
    expect(malformed).toMatchObject({ code: 'malformed_json', status: 400 });
  });

  it('when anything else is thrown, then it is a 500 whose message hides the original', () => {
    const error = toAppError(new TypeError('cannot read properties of undefined (secret internals)'));
    expect(error).toMatchObject({ code: 'internal_error', status: 500, message: 'Internal server error' });
    expect(JSON.stringify(error.toJSON())).not.toMatch(/secret internals/);
    expect(toAppError(undefined).status).toBe(500);
  });

  it('lists every bad field of a zod error', () => {
    const result = z.object({ a: z.string(), b: z.object({ c: z.number() }) }).safeParse({ b: { c: 'x' } });
    const details = fieldIssues('body', result.error!);
    expect(details.map((d) => d.path)).toEqual(['a', 'b.c']);
    expect(toAppError(result.error)).toBeInstanceOf(AppError);
  });
});
