// The demo business landing page (/m/flow_landing), as in the system wxauth replaces: the H5 sign-in ends here with
// appId, openId, unionId and a single-use ticket in the query string. The page exchanges them at
// /api/auth/oauth/token (grant_type=flow) and shows who signed in.
//
// Client credentials: a real business page gets its token through its own back end, which holds
// the client secret. `wxauth dev` publishes a flow-only demo client at
// /m/flow_landing/client.json so this page works on its own; other servers answer 404 there and
// the page only shows what it received.
//
// Like any official-account page that shares, scans or pays, it asks wxauth for its JS-SDK
// configuration (/api/wechat/jssdk/config, signed for this page's URL without its fragment) and
// shows what it would pass to wx.config.
//
// A sign-in this page starts ("Sign in again") names the page's client (`clientId`, so that only
// it can redeem the ticket) and a fresh `nonce` kept in sessionStorage; a result that comes back
// with another nonce while one is pending is refused (login CSRF). A result that arrives while
// the page started nothing is accepted, so that `wxauth dev`'s printed link works; a business
// page should start every sign-in itself and refuse such results.
(function () {
  'use strict';

  var ENTRY_BUILD = '/api/wechat/component/mp/common/entryBuildUrl';
  var JSSDK_CONFIG = '/api/wechat/jssdk/config';
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

  // Chinese first unless the browser prefers English, the other language beside it.
  var english = (function () {
    var langs = navigator.languages || [navigator.language || ''];
    for (var i = 0; i < langs.length; i++) {
      var l = String(langs[i]).toLowerCase();
      if (l.indexOf('zh') === 0) { return false; }
      if (l.indexOf('en') === 0) { return true; }
    }
    return false;
  })();
  function say(zh, en) { return english ? en + ' · ' + zh : zh + ' · ' + en; }

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

  // The way on: a fresh sign-in on the address's entry account (or, with none, the account the
  // server's demo client names); where neither is known, back to the server's front page.
  function offerSignInAgain() {
    pageClient().then(function (client) {
      var appId = got.appId || (client && client.entry_app_id) || '';
      if (!/^wx[0-9a-fA-F]{16}$/.test(appId)) {
        $('again-link').href = '/';
        $('again-link').textContent = say('返回首页', 'Back to the start page');
        $('again').hidden = false;
        return;
      }
      var params = new URLSearchParams({
        appId: appId,
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
    status(say('已登录', 'Signed in'), false);
  }

  // The wx.config this page would call: signed for the page's URL as it is now (the ticket
  // already removed from it), without the fragment, as WeChat checks it.
  function jssdkConfig(appId) {
    if (!/^wx[0-9a-fA-F]{16}$/.test(appId)) { return; }
    var url = window.location.href.split('#')[0];
    var params = new URLSearchParams({ appId: appId, url: url });
    fetch(JSSDK_CONFIG + '?' + params.toString(), { cache: 'no-store', credentials: 'omit' })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (answer) {
        var el = $('jssdk-status');
        if (!answer.ok) {
          el.textContent = say('JS-SDK 配置不可用', 'JS-SDK configuration unavailable') + ' (' + (answer.body.error_description || answer.body.error || '') + ')';
          el.className = 'message error';
        } else {
          $('jssdk-url').textContent = url;
          $('jssdk-timestamp').textContent = String(answer.body.timestamp);
          $('jssdk-nonce').textContent = answer.body.nonceStr;
          $('jssdk-signature').textContent = answer.body.signature;
          el.textContent = say('JS-SDK 已签名，可以调用 wx.config', 'JS-SDK signed: ready for wx.config');
          el.className = 'message';
        }
        $('jssdk').hidden = false;
      })
      .catch(function () { /* the sign-in result matters more; nothing to show */ });
  }

  async function main() {
    jssdkConfig(got.appId);
    if (!got.appId || !got.openId || !got.ticket) {
      status(say('这个页面的地址里没有登录结果，请登录。', 'There is no sign-in result in this page\'s address: please sign in.'), true);
      offerSignInAgain();
      return;
    }
    if (pendingNonce !== null && got.nonce !== pendingNonce) {
      status(say('这个登录结果不是本页发起的，请重新登录。', 'This page did not ask for this sign-in result: please sign in again.'), true);
      offerSignInAgain();
      return;
    }
    var client = await pageClient();
    if (!client) {
      status(say('已收到 openId 为 ' + got.openId + ' 的登录结果。本服务器没有为落地页提供演示客户端（只有 `wxauth dev` 提供）：请在你的后端用 grant_type=flow 在 /api/auth/oauth/token 兑换 ticket。',
        'Signed in as openId ' + got.openId + '. This server publishes no demo client for the ' +
        'landing page (only `wxauth dev` does): exchange the ticket from your back end with ' +
        'grant_type=flow at /api/auth/oauth/token.'), false);
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
      status(say('登录没有完成，请重新登录。', 'Sign-in did not finish: please sign in again.') + ' (' + (token.error || ('HTTP ' + response.status)) + ')', true);
      offerSignInAgain();
      return;
    }
    show(token);
  }

  main().catch(function (e) {
    status(say('登录没有完成，请重新登录。', 'Sign-in did not finish: please sign in again.'), true);
    if (window.console) { window.console.error(e); }
    offerSignInAgain();
  });
})();
