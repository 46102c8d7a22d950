import { type Auth, identityOf } from '@cloudretail/auth';
import { createApi } from '@cloudretail/http';
import { LoginInput, ProfilePatch, RegisterInput, Session, User } from '../../domain/user';
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
      summary: 'Sign in with email and password (failed attempts are throttled per account and per IP)',
      body: LoginInput,
      responses: { 200: Session, 401: null, 429: null },
    },
    async ({ body }, req, res) => res.json(await useCases.login(body, req.ip ?? 'unknown')),
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
