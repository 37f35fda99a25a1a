/**
 * wxauth for Mini Programs: copy this file into your Mini Program (e.g. `utils/wxauth.js`).
 *
 *   const { WxAuth } = require('./utils/wxauth')
 *   const auth = new WxAuth({
 *     baseUrl: 'https://auth.example.com',   // your wxauth (add it to the request domain list)
 *     appId: 'wx…',                          // this Mini Program's appid
 *     clientId: 'my-mini-program',           // a wxauth client with the flow (or mini_program) grant
 *     clientSecret: '…',
 *   })
 *   const tokens = await auth.login()        // wx.login → /ma/session (a ticket for clientId) → flow grant
 *   // <button open-type="getPhoneNumber" bindgetphonenumber="onPhone">
 *   //   onPhone(e) { auth.savePhone(e.detail) }
 *   // <input type="nickname" bindblur="onNickname"> and
 *   // <button open-type="chooseAvatar" bindchooseavatar="onAvatar"> (e.detail.avatarUrl is a temp file):
 *   //   auth.saveProfile({ nickname, avatarPath })   // checked by WeChat, stored by wxauth
 *   // <web-view src="{{page}}?ticket={{ticket}}">, with ticket = await auth.webViewTicket():
 *   //   the page signs in silently (flow grant with the ticket, or login_hint=ticket)
 *
 * Or in one round trip (the client needs the `mini_program` grant): `await auth.loginOneShot()`.
 *
 * Approving a sign-in on another device (its verification page shows this Mini Program's code;
 * the approval page gets the user code as `options.scene`):
 *   //   onLoad(options) { this.asked = await auth.describeDevice(options.scene) }
 *   //   onApprove() { auth.approveDevice(options.scene) }   // or approveDevice(code, 'deny')
 *
 * Code shipped in a Mini Program is readable by anyone, so `clientSecret` here only identifies
 * the front end, as in the system wxauth replaces: the proof of the user is the single-use wx.login code (or the
 * login ticket it yields). Give the Mini Program a client of its own with only the grants and
 * scopes it needs. The session_key never reaches the Mini Program: wxauth keeps it and hands out
 * an opaque `sessionId` instead.
 *
 * Every method returns a Promise; a failed call rejects with an Error whose `status` and `body`
 * are wxauth's answer (`body.error_description` says what went wrong).
 */

function base64(text) {
  // Basic auth needs base64 of UTF-8; wx.arrayBufferToBase64 exists in Mini Programs, Buffer in
  // Node (for tests), btoa in browsers.
  if (typeof wx !== 'undefined' && wx.arrayBufferToBase64 && typeof TextEncoder !== 'undefined') {
    return wx.arrayBufferToBase64(new TextEncoder().encode(text).buffer)
  }
  if (typeof Buffer !== 'undefined') return Buffer.from(text, 'utf8').toString('base64')
  return btoa(unescape(encodeURIComponent(text)))
}

function form(params) {
  return Object.keys(params)
    .filter((k) => params[k] !== undefined && params[k] !== null)
    .map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(params[k]))
    .join('&')
}

/** Resolve with `body` on a 2xx status; otherwise reject with an Error carrying status and body. */
function settle(path, statusCode, data, resolve, reject) {
  if (statusCode >= 200 && statusCode < 300) return resolve(data)
  const body = data || {}
  const error = new Error('wxauth ' + path + ': ' + statusCode + ' ' +
    (body.error_description || body.error || ''))
  error.status = statusCode
  error.body = body
  reject(error)
}

class WxAuth {
  /** @param {{baseUrl: string, appId: string, clientId: string, clientSecret?: string, scope?: string}} options */
  constructor(options) {
    for (const key of ['baseUrl', 'appId', 'clientId']) {
      if (!options || !options[key]) throw new Error('WxAuth: ' + key + ' is required')
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.appId = options.appId
    this.clientId = options.clientId
    this.clientSecret = options.clientSecret || ''
    this.scope = options.scope
    /** The server-side session of the last login (for saveProfile / savePhone). */
    this.sessionId = null
    /** What /ma/session answered last: openId, unionId, isNew. */
    this.user = null
  }

  /** wx.request as a Promise; rejects on a non-2xx answer. */
  request(path, { method = 'POST', data, headers = {} } = {}) {
    return new Promise((resolve, reject) => {
      wx.request({
        url: this.baseUrl + path,
        method,
        data,
        header: headers,
        success: (res) => settle(path, res.statusCode, res.data, resolve, reject),
        fail: (err) => reject(new Error('wxauth ' + path + ': ' + (err && err.errMsg))),
      })
    })
  }

  /** wx.uploadFile as a Promise: `filePath` as the form field `name`, beside `formData`. */
  upload(path, { filePath, name, formData }) {
    return new Promise((resolve, reject) => {
      wx.uploadFile({
        url: this.baseUrl + path,
        filePath,
        name,
        formData,
        success: (res) => {
          let body = res.data
          try { body = JSON.parse(res.data) } catch (_) { /* not JSON */ }
          settle(path, res.statusCode, body, resolve, reject)
        },
        fail: (err) => reject(new Error('wxauth ' + path + ': ' + (err && err.errMsg))),
      })
    })
  }

  /** A fresh wx.login code. */
  wxLoginCode() {
    return new Promise((resolve, reject) => {
      wx.login({
        success: (res) => (res.code ? resolve(res.code) : reject(new Error('wx.login gave no code'))),
        fail: (err) => reject(new Error('wx.login: ' + (err && err.errMsg))),
      })
    })
  }

  /** POST to the token endpoint with client Basic authentication. */
  token(params) {
    return this.request('/api/auth/oauth/token', {
      data: form(Object.assign({ scope: this.scope }, params)),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: 'Basic ' + base64(encodeURIComponent(this.clientId) + ':' +
          encodeURIComponent(this.clientSecret)),
      },
    })
  }

  /** wx.login → /api/wechat/ma/session: the identity, isNew, a sessionId and a login ticket
   *  that only this client can redeem. */
  async session() {
    const code = await this.wxLoginCode()
    const answer = await this.request('/api/wechat/ma/session', {
      data: { appId: this.appId, code, clientId: this.clientId },
      headers: { 'content-type': 'application/json' },
    })
    this.sessionId = answer.sessionId
    this.user = { openId: answer.openId, unionId: answer.unionId, isNew: answer.isNew }
    return answer
  }

  /** Sign in: session, then the flow grant with the session's ticket. Resolves to the tokens. */
  async login() {
    const s = await this.session()
    return this.token({
      grant_type: 'flow',
      appId: this.appId,
      openId: s.openId,
      unionId: s.unionId || undefined,
      ticket: s.ticket,
    })
  }

  /** Sign in with one request (the client needs the `mini_program` grant). */
  async loginOneShot() {
    const code = await this.wxLoginCode()
    const tokens = await this.token({ grant_type: 'mini_program', appId: this.appId, code })
    this.sessionId = tokens.session_id
    return tokens
  }

  /** Store what the person chose with the profile pickers: `nickname` from
   *  `<input type="nickname">`, `avatarPath` the temporary file `chooseAvatar` gave
   *  (`e.detail.avatarUrl`); either may be left out. wxauth checks the nickname with WeChat and
   *  re-encodes the avatar. Resolves to {nickName, nickNameStatus, avatarUrl, message}:
   *  nickNameStatus is `passed`, `review` or `pending` (WeChat could not check it yet; it is
   *  saved and checked again), and a risky nickname rejects with status 400.
   *
   *  Given the older `wx.getUserProfile` / `getUserInfo` answer (encryptedData, iv, rawData,
   *  signature) instead, stores that as before and resolves to the stored user. */
  saveProfile(profile) {
    this.requireSession()
    if (profile && ('nickname' in profile || 'avatarPath' in profile)) {
      return this.saveChosenProfile(profile)
    }
    const res = profile || {}
    return this.request('/api/wechat/ma/user', {
      data: {
        sessionId: this.sessionId,
        encryptedData: res.encryptedData,
        iv: res.iv,
        rawData: res.rawData,
        signature: res.signature,
      },
      headers: { 'content-type': 'application/json' },
    })
  }

  /** Store the phone number from a getPhoneNumber button's `e.detail` (with `code`, or with
   *  encryptedData and iv on older base libraries). Resolves to {phoneNumber, purePhoneNumber,
   *  countryCode}. */
  savePhone(detail) {
    this.requireSession()
    const data = detail.code
      ? { sessionId: this.sessionId, code: detail.code }
      : { sessionId: this.sessionId, encryptedData: detail.encryptedData, iv: detail.iv }
    return this.request('/api/wechat/ma/phone', {
      data,
      headers: { 'content-type': 'application/json' },
    })
  }

  saveChosenProfile({ nickname, avatarPath }) {
    const path = '/api/wechat/ma/profile'
    const fields = { sessionId: this.sessionId }
    if (nickname !== undefined && nickname !== null) fields.nickname = String(nickname)
    if (avatarPath) return this.upload(path, { filePath: avatarPath, name: 'avatar', formData: fields })
    // No file: the multipart form built here (wx.request sends a string body as it is).
    const boundary = '----wxauth' + Math.random().toString(36).slice(2)
    const body = Object.keys(fields).map((k) => '--' + boundary + '\r\n' +
      'content-disposition: form-data; name="' + k + '"\r\n\r\n' + fields[k] + '\r\n').join('') +
      '--' + boundary + '--\r\n'
    return this.request(path, {
      data: body,
      headers: { 'content-type': 'multipart/form-data; boundary=' + boundary },
    })
  }

  /** A one-time ticket (60 s) for the page this Mini Program opens in its `<web-view>`, which
   *  only this client can redeem: put it in the page's URL. Resolves to the ticket. */
  async webViewTicket() {
    this.requireSession()
    const answer = await this.request('/api/wechat/ma/webview-ticket', {
      data: { sessionId: this.sessionId, clientId: this.clientId },
      headers: { 'content-type': 'application/json' },
    })
    return answer.ticket
  }

  /** On the device-approval page (opened by the Mini Program code of a TV, CLI or desktop app's
   *  sign-in; its `options.scene` is the user code): what the device asks, to show before the
   *  person answers. Resolves to {clientId, clientName, scope, userCode}. */
  describeDevice(userCode) {
    this.requireSession()
    return this.request('/api/wechat/ma/device', {
      data: { sessionId: this.sessionId, userCode: decodeURIComponent(String(userCode)) },
      headers: { 'content-type': 'application/json' },
    })
  }

  /** Approve (or, with decision 'deny', refuse) the device waiting for `userCode`: its next poll
   *  receives tokens for this user. Resolves to {decision, clientId}. */
  approveDevice(userCode, decision = 'approve') {
    this.requireSession()
    return this.request('/api/wechat/ma/device/approve', {
      data: {
        sessionId: this.sessionId,
        userCode: decodeURIComponent(String(userCode)),
        decision,
      },
      headers: { 'content-type': 'application/json' },
    })
  }

  /** Use a refresh token (the client needs the `refresh_token` grant). */
  refresh(refreshToken) {
    return this.token({ grant_type: 'refresh_token', refresh_token: refreshToken })
  }

  requireSession() {
    if (!this.sessionId) throw new Error('WxAuth: call login() first')
  }
}

module.exports = { WxAuth }
