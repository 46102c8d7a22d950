import nx from '@nx/eslint-plugin';

// Module boundaries are enforced, not declared: an app may import libs, a lib never imports an
// app, and one service's code (scope:<svc>) is never imported by another service.
export default [
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  { ignores: ['**/dist', '**/node_modules', '**/.nx', '**/.data', '**/tmp', '**/coverage'] },
  {
    files: ['**/*.ts'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: true,
          allow: [],
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
            { sourceTag: 'scope:api-gateway', onlyDependOnLibsWithTags: ['scope:shared', 'scope:api-gateway'] },
            { sourceTag: 'scope:user', onlyDependOnLibsWithTags: ['scope:shared', 'scope:user'] },
            { sourceTag: 'scope:product', onlyDependOnLibsWithTags: ['scope:shared', 'scope:product'] },
            { sourceTag: 'scope:inventory', onlyDependOnLibsWithTags: ['scope:shared', 'scope:inventory'] },
            { sourceTag: 'scope:order', onlyDependOnLibsWithTags: ['scope:shared', 'scope:order'] },
            { sourceTag: 'scope:payment', onlyDependOnLibsWithTags: ['scope:shared', 'scope:payment'] },
            { sourceTag: 'scope:event-bus', onlyDependOnLibsWithTags: ['scope:shared', 'scope:event-bus'] },
            { sourceTag: 'scope:tools', onlyDependOnLibsWithTags: ['scope:shared', 'scope:tools'] },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.ts'],
    rules: { '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }] },
  },
  { files: ['**/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
  { files: ['**/test/**/*.ts'], rules: { '@typescript-eslint/no-non-null-assertion': 'off' } },
];
