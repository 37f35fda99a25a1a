// The `wxauth dev` OpenID Connect demo: a single-page app that signs in with the authorization
// code flow and PKCE (S256) as the public client `demo-spa` (or ?client_id=…), then shows the ID
// token's claims and the UserInfo answer. Everything stays in this tab (sessionStorage).
'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  var clientId = params.get('client_id') || sessionStorage.getItem('oidc_demo.client_id') || 'demo-spa';
  var redirectUri = location.origin + location.pathname;
  var $ = function (id) { return document.getElementById(id); };

  function b64url(bytes) {
    var text = '';
    new Uint8Array(bytes).forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function random() { return b64url(crypto.getRandomValues(new Uint8Array(32))); }
  function status(text, isError) {
    $('status').textContent = text;
    $('status').classList.toggle('error', !!isError);
  }
  function claimsOf(jwt) {
    var part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  async function signIn(event) {
    event.preventDefault();
    var verifier = random();
    var challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
    var state = random();
    var nonce = random();
    sessionStorage.setItem('oidc_demo.pending', JSON.stringify({ verifier: verifier, state: state, nonce: nonce }));
    sessionStorage.setItem('oidc_demo.client_id', clientId);
    var url = new URL('/oauth/authorize', location.origin);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: clientId, redirect_uri: redirectUri,
      scope: 'openid profile', state: state, nonce: nonce,
      code_challenge: challenge, code_challenge_method: 'S256',
    }).toString();
    location.assign(url.toString());
  }

  async function finish() {
    var pending = JSON.parse(sessionStorage.getItem('oidc_demo.pending') || 'null');
    sessionStorage.removeItem('oidc_demo.pending');
    history.replaceState(null, '', redirectUri);
    if (params.get('error')) throw new Error(params.get('error') + ': ' + (params.get('error_description') || ''));
    if (!pending || pending.state !== params.get('state')) throw new Error('state does not match this tab\'s sign-in');
    var response = await fetch('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      credentials: 'omit',
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri,
        client_id: clientId, code_verifier: pending.verifier,
      }),
    });
    var tokens = await response.json();
    if (!response.ok) throw new Error(tokens.error + ': ' + (tokens.error_description || ''));
    var claims = claimsOf(tokens.id_token);
    if (claims.nonce !== pending.nonce) throw new Error('the ID token\'s nonce is not this sign-in\'s');
    var info = await (await fetch('/oauth/userinfo', {
      headers: { authorization: 'Bearer ' + tokens.access_token }, credentials: 'omit',
    })).json();
    $('name').textContent = info.name || ('user ' + info.sub);
    if (info.picture) { $('picture').src = info.picture; $('picture').hidden = false; }
    $('id-token').textContent = JSON.stringify(claims, null, 2);
    $('userinfo').textContent = JSON.stringify(info, null, 2);
    $('user').hidden = false;
    status('已登录 · Signed in');
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('sign-in').addEventListener('click', signIn);
    if (params.has('code') || params.has('error')) {
      $('start').hidden = true;
      status('正在完成登录… Finishing sign-in…');
      finish().catch(function (error) { status(error.message, true); $('start').hidden = false; });
    }
  });
})();
