import { type Auth, identityOf, requireRole } from '@cloudretail/auth';
import { createApi } from '@cloudretail/http';
import { LoginInput, ProfilePatch, RegisterInput, RoleChange, Session, User, UserIdParams } from '../../domain/user';
import type { UserUseCases } from '../../domain/user-use-cases';

/** Accounts and sessions: public register and login, then the caller's own profile. */
export function userApi(useCases: UserUseCases, auth: Auth) {
  const api = createApi({ title: 'user-service', version: '1.0.0', description: 'CloudRetail accounts and sessions' });

  api.route(
    { method: 'post', path: '/auth/register', operationId: 'register', summary: 'Create a customer account and sign in', body: RegisterInput, responses: { 201: Session, 409: null } },
    async ({ body }, _req, res) => res.status(201).json(await useCases.register(body)),
  );
  api.route(
    {
      method: 'post',
      path: '/auth/login', operationId: 'login',
      summary: 'Sign in with email and password (failed attempts are throttled per client address and per account)',
      body: LoginInput,
      responses: { 200: Session, 401: null, 429: null },
    },
    async ({ body }, req, res) => res.json(await useCases.login(body, req.ip ?? 'unknown')),
  );
  api.route(
    {
      method: 'post',
      path: '/auth/logout', operationId: 'logout',
      summary: "End every session of the caller: all the caller's tokens stop working (within JWT_REVOCATION_CACHE_MS in other services)",
      auth: 'user',
      responses: { 204: null },
      before: [auth.authenticate],
    },
    async (_input, req, res) => {
      await useCases.logout(identityOf(req).userId);
      res.status(204).end();
    },
  );
  api.route(
    {
      method: 'put',
      path: '/users/:id/role', operationId: 'setUserRole',
      summary: "Change a user's role; their existing tokens are revoked",
      auth: 'admin',
      params: UserIdParams,
      body: RoleChange,
      responses: { 200: User, 409: null },
      before: [auth.authenticate, requireRole('admin')],
    },
    async ({ params, body }, req, res) => res.json(await useCases.setRole(identityOf(req).userId, params.id, body.role)),
  );
  api.route(
    { method: 'get', path: '/users/me', operationId: 'getMyProfile', summary: "The caller's profile", auth: 'user', responses: { 200: User, 404: null }, before: [auth.authenticate] },
    async (_input, req, res) => res.json(await useCases.getProfile(identityOf(req).userId)),
  );
  api.route(
    {
      method: 'patch',
      path: '/users/me', operationId: 'updateMyProfile',
      summary: "Update the caller's name and/or preferences (preferences are replaced as a whole)",
      auth: 'user',
      body: ProfilePatch,
      responses: { 200: User, 404: null },
      before: [auth.authenticate],
    },
    async ({ body }, req, res) => res.json(await useCases.updateProfile(identityOf(req).userId, body)),
  );
  return api;
}
