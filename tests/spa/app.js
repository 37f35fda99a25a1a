// The single-page app of tests/it/spa_browser.rs: a public client on another origin than wxauth,
// doing everything from the browser with oauth4webapi (served from this folder's npm install):
// discovery, authorization code + PKCE (sign-in on wxauth's pages), the token endpoint, UserInfo,
// refresh and revocation. Each step writes what it saw into the page for the test to read.
import * as oauth from '/vendor/oauth4webapi.js';

const config = JSON.parse(document.getElementById('config').textContent);
const issuer = new URL(config.issuer);
const client = { client_id: config.client_id };
const clientAuth = oauth.None();
// The test servers speak plain http on 127.0.0.1.
const insecure = { [oauth.allowInsecureRequests]: true };
const redirectUri = location.origin + location.pathname;

function show(id, value) {
  const element = document.getElementById(id);
  element.textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  element.closest('li')?.classList.add('ok');
}

function describe(error) {
  if (error instanceof oauth.ResponseBodyError) return `${error.error}: ${error.error_description ?? ''}`;
  if (error instanceof oauth.WWWAuthenticateChallengeError) {
    return error.cause.map((c) => `${c.scheme} ${JSON.stringify(c.parameters)}`).join('; ');
  }
  return `${error?.name}: ${error?.message}`;
}

async function main() {
  document.getElementById('origin').textContent = location.origin;
  let step = 'discovery';
  try {
    const as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
    );
    show('discovery', { issuer: as.issuer, token_endpoint: as.token_endpoint });

    const query = new URLSearchParams(location.search);
    if (!query.has('code') && !query.has('error')) {
      const button = document.getElementById('sign-in');
      button.hidden = false;
      button.addEventListener('click', async () => {
        const verifier = oauth.generateRandomCodeVerifier();
        const state = oauth.generateRandomState();
        const nonce = oauth.generateRandomNonce();
        sessionStorage.setItem('signing-in', JSON.stringify({ verifier, state, nonce }));
        const url = new URL(as.authorization_endpoint);
        url.searchParams.set('response_type', 'code');
        url.searchParams.set('client_id', client.client_id);
        url.searchParams.set('redirect_uri', redirectUri);
        url.searchParams.set('scope', 'openid profile');
        url.searchParams.set('state', state);
        url.searchParams.set('nonce', nonce);
        url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
        url.searchParams.set('code_challenge_method', 'S256');
        location.assign(url.href);
      });
      return;
    }

    step = 'callback';
    const { verifier, state, nonce } = JSON.parse(sessionStorage.getItem('signing-in'));
    sessionStorage.removeItem('signing-in');
    const callback = oauth.validateAuthResponse(as, client, new URL(location.href), state);
    history.replaceState(null, '', redirectUri);

    step = 'token';
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callback, redirectUri, verifier, insecure),
      { expectedNonce: nonce, requireIdToken: true },
    );
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    show('token', {
      token_type: tokens.token_type,
      scope: tokens.scope,
      refresh_token: Boolean(tokens.refresh_token),
      sub: claims.sub,
      nonce_matches: claims.nonce === nonce,
    });

    step = 'userinfo';
    const userinfo = await oauth.processUserInfoResponse(
      as,
      client,
      claims.sub,
      await oauth.userInfoRequest(as, client, tokens.access_token, insecure),
    );
    show('userinfo', { sub: userinfo.sub, name: userinfo.name });

    step = 'refresh';
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, insecure),
    );
    show('refresh', {
      new_access_token: refreshed.access_token !== tokens.access_token,
      new_refresh_token: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
    });

    step = 'revoke';
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth, refreshed.refresh_token, insecure),
    );
    show('revoke', 'revoked');

    step = 'after-revoke';
    const after = {};
    try {
      await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshed.refresh_token, insecure),
      );
      after.refresh = 'still works';
    } catch (error) {
      after.refresh = describe(error);
    }
    try {
      await oauth.processUserInfoResponse(
        as,
        client,
        claims.sub,
        await oauth.userInfoRequest(as, client, refreshed.access_token, insecure),
      );
      after.userinfo = 'still works';
    } catch (error) {
      after.userinfo = describe(error);
    }
    show('after-revoke', after);
    document.getElementById('done').hidden = false;
  } catch (error) {
    document.getElementById('error').textContent = `${step}: ${describe(error)}`;
  }
}

main();
