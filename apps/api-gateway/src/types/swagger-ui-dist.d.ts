// swagger-ui-dist ships no types; only the path helper is used (its index would load the whole
// browser bundle into the server).
declare module 'swagger-ui-dist/absolute-path.js' {
  const getAbsoluteFSPath: () => string;
  export default getAbsoluteFSPath;
}
