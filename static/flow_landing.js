// The business landing page of the seed (/m/flow_landing): the H5 sign-in ends here with
// appId, openId, unionId and a single-use ticket in the query string. The page exchanges them at
// /api/auth/oauth/token (grant_type=flow) and shows who signed in.
//
// Client credentials: a real business page gets its token through its own back end, which holds
// the client secret. `wxauth dev` publishes a flow-only demo client at
// /m/flow_landing/client.json so this page works on its own; other servers answer 404 there and
// the page only shows what it received.
//
// A sign-in this page starts ("Sign in again") names the page's client (`clientId`, so that only
// it can redeem the ticket) and a fresh `nonce` kept in sessionStorage; a result that comes back
// with another nonce while one is pending is refused (login CSRF). A result that arrives while
// the page started nothing is accepted, so that `wxauth dev`'s printed link works; a business
// page should start every sign-in itself and refuse such results.
(function () {
  'use strict';

  var ENTRY_BUILD = '/api/wechat/component/mp/common/entryBuildUrl';
  var CLIENT = '/m/flow_landing/client.json';
  var NONCE_KEY = 'wxauth.flow_landing.nonce';
  var $ = function (id) { return document.getElementById(id); };

  var query = new URLSearchParams(window.location.search);
  var got = {
    appId: query.get('appId') || '',
    openId: query.get('openId') || '',
    unionId: query.get('unionId') || '',
    ticket: query.get('ticket') || '',
    nonce: query.get('nonce') || ''
  };
  // The nonce of the sign-in this page started, if any (used once).
  var pendingNonce = null;
  try {
    pendingNonce = window.sessionStorage.getItem(NONCE_KEY);
    window.sessionStorage.removeItem(NONCE_KEY);
  } catch (e) { /* storage disabled: nothing pending */ }

  // The ticket works once: keep it out of the address bar, bookmarks and shared links.
  if (got.ticket) {
    query.delete('ticket');
    var rest = query.toString();
    window.history.replaceState(null, '', window.location.pathname + (rest ? '?' + rest : '') + window.location.hash);
  }

  function status(text, isError) {
    var el = $('status');
    el.textContent = text;
    el.className = isError ? 'message error' : 'message';
  }

  function newNonce() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  // The page's own client, when this server publishes one (only `wxauth dev` does).
  var clientPromise = null;
  function pageClient() {
    if (!clientPromise) {
      clientPromise = fetch(CLIENT, { cache: 'no-store', credentials: 'omit' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .catch(function () { return null; });
    }
    return clientPromise;
  }

  function offerSignInAgain() {
    if (!/^wx[0-9a-fA-F]{16}$/.test(got.appId)) { return; }
    pageClient().then(function (client) {
      var params = new URLSearchParams({
        appId: got.appId,
        next: window.location.origin + window.location.pathname,
        redirect: '1'
      });
      if (client && client.client_id) { params.set('clientId', client.client_id); }
      var link = $('again-link');
      link.href = ENTRY_BUILD + '?' + params.toString();
      // A fresh nonce for each attempt, remembered only when the user starts it.
      link.onclick = function (event) {
        var nonce = newNonce();
        try { window.sessionStorage.setItem(NONCE_KEY, nonce); } catch (e) { return; }
        params.set('nonce', nonce);
        event.preventDefault();
        window.location.assign(ENTRY_BUILD + '?' + params.toString());
      };
      $('again').hidden = false;
    });
  }

  // application/x-www-form-urlencoded, as RFC 6749 §2.3.1 asks for Basic credentials.
  function formEncode(text) {
    return encodeURIComponent(text).replace(/%20/g, '+');
  }

  function decodeJwtPayload(token) {
    var part = String(token).split('.')[1] || '';
    var b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) { b64 += '='; }
    var binary = window.atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function show(token) {
    $('nick-name').textContent = token.nick_name || '(no nick name)';
    if (token.avatar && /^https?:\/\//.test(token.avatar)) {
      $('avatar').src = token.avatar;
      $('avatar').hidden = false;
    }
    $('flow-user-id').textContent = token.flow_user_id || '';
    $('union-id').textContent = got.unionId || '(none)';
    $('app-id').textContent = got.appId;
    $('open-id').textContent = got.openId;
    var claims;
    try {
      claims = JSON.stringify(decodeJwtPayload(token.access_token), null, 2);
    } catch (e) {
      claims = '(the access token is not a JWT this page can read)';
    }
    $('claims').textContent = claims;
    $('user').hidden = false;
    status('已登录 · Signed in', false);
  }

  async function main() {
    if (!got.appId || !got.openId || !got.ticket) {
      status('这个页面的地址里没有登录结果。 No sign-in result in this page\'s address: sign in again.', true);
      offerSignInAgain();
      return;
    }
    if (pendingNonce !== null && got.nonce !== pendingNonce) {
      status('这个登录结果不是本页发起的。 This page did not ask for this sign-in result: sign in again.', true);
      offerSignInAgain();
      return;
    }
    var client = await pageClient();
    if (!client) {
      status('Signed in as openId ' + got.openId + '. This server publishes no demo client for the ' +
        'landing page (only `wxauth dev` does): exchange the ticket from your back end with ' +
        'grant_type=flow at /api/auth/oauth/token.', false);
      return;
    }
    var body = new URLSearchParams({
      grant_type: 'flow',
      scope: 'flow',
      appId: got.appId,
      openId: got.openId,
      ticket: got.ticket
    });
    if (got.unionId) { body.set('unionId', got.unionId); }
    var response = await fetch('/api/auth/oauth/token', {
      method: 'POST',
      headers: {
        'Authorization': 'Basic ' + window.btoa(formEncode(client.client_id) + ':' + formEncode(client.client_secret)),
        'Content-Type': 'application/x-www-form-urlencoded'
      },
      body: body,
      credentials: 'omit',
      cache: 'no-store'
    });
    var token = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      status('登录失败 · Sign-in refused: ' + (token.error_description || token.error || ('HTTP ' + response.status)), true);
      offerSignInAgain();
      return;
    }
    show(token);
  }

  main().catch(function (e) {
    status('登录失败 · Sign-in failed: ' + e.message, true);
    offerSignInAgain();
  });
})();
