// The peer bench/run.sh compares against: node-oidc-provider 8 (panva), the most used
// certified OpenID provider on Node, answering client_credentials with its default in-memory
// adapter and opaque access tokens. Started by bench/run.sh after it installed the package
// into a cache directory (BENCH_PEER_CACHE); never part of the tests.
//
//   node bench/peer/oidc-provider.mjs PORT CLIENT_ID CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, clientId, clientSecret] = process.argv.slice(2);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'api',
  }],
  scopes: ['api'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
  },
});
provider.listen(Number(port), '127.0.0.1');
