import getAbsoluteFSPath from 'swagger-ui-dist/absolute-path.js';
import { express } from '@cloudretail/http';
import type { Logger } from '@cloudretail/logging';
import { type ServiceDocument, mergeDocuments } from './openapi';

export interface DocsOptions {
  upstreams: { name: string; url: string }[];
  /** How long a complete merged document is served from memory. */
  ttlMs: number;
  logger: Logger;
  fetchTimeoutMs?: number;
}

// A document missing a service is retried sooner than a complete one.
const PARTIAL_TTL_MS = 5_000;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>CloudRetail API</title>
  <link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api/docs/init.js"></script>
</body>
</html>
`;
const INIT = `window.ui = SwaggerUIBundle({ url: '/api/docs/openapi.json', dom_id: '#swagger-ui', deepLinking: true, persistAuthorization: true });\n`;

/**
 * `GET /api/docs/openapi.json`: the merged OpenAPI document of every service, fetched from each
 * upstream's `/openapi.json` and cached; `GET /api/docs`: Swagger UI served from the npm package
 * (no CDN).
 */
export function docsRouter({ upstreams, ttlMs, logger, fetchTimeoutMs = 2_000 }: DocsOptions) {
  let cached: { doc: Record<string, unknown>; expiresAt: number } | undefined;
  let building: Promise<Record<string, unknown>> | undefined;

  const fetchOne = async ({ name, url }: { name: string; url: string }): Promise<ServiceDocument> => {
    try {
      const res = await fetch(`${url}/openapi.json`, { signal: AbortSignal.timeout(fetchTimeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const doc = (await res.json()) as Record<string, unknown>;
      if (typeof doc.openapi !== 'string') throw new Error('not an OpenAPI document');
      return { upstream: name, doc };
    } catch (error) {
      logger.warn({ upstream: name, err: error }, 'docs: upstream OpenAPI document unavailable');
      return { upstream: name, error: (error as Error).message };
    }
  };

  const build = async () => {
    const doc = mergeDocuments(await Promise.all(upstreams.map(fetchOne)));
    cached = { doc, expiresAt: Date.now() + ('x-unavailable' in doc ? Math.min(ttlMs, PARTIAL_TTL_MS) : ttlMs) };
    return doc;
  };

  const router = express.Router();
  router.get('/openapi.json', async (_req, res) => {
    if (cached && cached.expiresAt > Date.now()) return res.json(cached.doc);
    // Concurrent requests share one round of fetches.
    building ??= build().finally(() => (building = undefined));
    res.json(await building);
  });
  router.get('/', (_req, res) => {
    res.type('html').send(PAGE);
  });
  router.get('/init.js', (_req, res) => {
    res.type('js').send(INIT);
  });
  router.use('/assets', express.static(getAbsoluteFSPath(), { index: false, maxAge: '1d' }));
  return router;
}
