import type { Auth } from '@cloudretail/auth';
import { requireRole } from '@cloudretail/auth';
import { createApi } from '@cloudretail/http';
import { IdParams, Product, ProductInput, ProductList, ProductPatch, ProductQuery } from '../../domain/product';
import type { ProductUseCases } from '../../domain/product-use-cases';

/** The catalog API. Public reads; writes need an admin token. */
export function productApi(useCases: ProductUseCases, auth: Auth) {
  const api = createApi({ title: 'product-service', version: '1.0.0', description: 'CloudRetail catalog' });
  const admin = [auth.authenticate, requireRole('admin')];

  api.route(
    { method: 'get', path: '/products', operationId: 'listProducts', summary: 'List active products (paginated, searchable)', query: ProductQuery, responses: { 200: ProductList } },
    async ({ query }, _req, res) => res.json(await useCases.listProducts(query)),
  );
  api.route(
    { method: 'get', path: '/products/:id', operationId: 'getProduct', summary: 'Get a product', params: IdParams, responses: { 200: Product }, before: [auth.optionalAuthenticate] },
    async ({ params }, req, res) => res.json(await useCases.getProduct(params.id, { includeInactive: req.identity?.role === 'admin' })),
  );
  api.route(
    { method: 'post', path: '/products', operationId: 'createProduct', summary: 'Create a product', auth: 'admin', body: ProductInput, responses: { 201: Product, 409: null }, before: admin },
    async ({ body }, _req, res) => res.status(201).json(await useCases.createProduct(body)),
  );
  api.route(
    { method: 'patch', path: '/products/:id', operationId: 'updateProduct', summary: 'Update a product', auth: 'admin', params: IdParams, body: ProductPatch, responses: { 200: Product }, before: admin },
    async ({ params, body }, _req, res) => res.json(await useCases.updateProduct(params.id, body)),
  );
  api.route(
    { method: 'delete', path: '/products/:id', operationId: 'deleteProduct', summary: 'Soft-delete a product', auth: 'admin', params: IdParams, responses: { 204: null }, before: admin },
    async ({ params }, _req, res) => {
      await useCases.deleteProduct(params.id);
      res.status(204).end();
    },
  );
  return api;
}
