import { z } from '@cloudretail/config';

const Currency = z
  .string()
  .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD')
  .default('USD');

export const ProductInput = z
  .object({
    sku: z.string().trim().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash and underscore only'),
    name: z.string().trim().min(1).max(200),
    description: z.string().max(5000).default(''),
    category: z.string().trim().min(1).max(100),
    priceCents: z.number().int().nonnegative().max(100_000_000),
    currency: Currency,
  })
  .strict();

export const ProductPatch = ProductInput.omit({ sku: true })
  .partial()
  .extend({ currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD').optional(), active: z.boolean().optional() })
  .strict()
  .refine((p) => Object.keys(p).length > 0, 'at least one field is required');

export const Product = z
  .object({
    id: z.uuid(),
    sku: z.string(),
    name: z.string(),
    description: z.string(),
    category: z.string(),
    priceCents: z.number().int(),
    currency: z.string(),
    active: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Product' });

export const ProductQuery = z.object({
  page: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  q: z.string().trim().min(1).max(200).optional(),
  category: z.string().trim().min(1).max(100).optional(),
});

export const ProductList = z.object({ items: z.array(Product), page: z.number(), limit: z.number(), total: z.number() });
export const IdParams = z.object({ id: z.uuid() });

export type ProductInput = z.infer<typeof ProductInput>;
export type ProductPatch = z.infer<typeof ProductPatch>;
export type Product = z.infer<typeof Product>;
export type ProductQuery = z.infer<typeof ProductQuery>;
export type ProductList = z.infer<typeof ProductList>;
