// Runs static/wxauth-miniprogram.js the way a Mini Program page would, with a `wx` object whose
// wx.login asks the WeChat simulator for a code and whose wx.request is fetch. Started by the
// Rust integration test `mini_program::the_javascript_helper_signs_in_end_to_end`.
//
//   node tests/js/miniprogram_helper.cjs WXAUTH_BASE SIM_BASE APPID CLIENT_ID CLIENT_SECRET USER
//
// Prints one JSON line with what the page would see; exits non-zero on any failure.
// AVATAR_FILE (optional) is a picture standing in for the temporary file chooseAvatar gives.
'use strict'
const fs = require('fs')
const path = require('path')
const [base, simBase, appId, clientId, clientSecret, user, avatarFile] = process.argv.slice(2)

async function sim(pathname, body) {
  const res = await fetch(simBase + pathname, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (!res.ok) throw new Error(pathname + ': ' + res.status + ' ' + (await res.text()))
  return res.json()
}

globalThis.wx = {
  login({ success, fail }) {
    sim('/__sim/codes/js', { appid: appId, user }).then((r) => success({ code: r.code }), fail)
  },
  request({ url, method, data, header, success, fail }) {
    const json = typeof data !== 'string'
    fetch(url, {
      method,
      headers: header,
      body: json ? JSON.stringify(data) : data,
    })
      .then(async (res) => {
        const text = await res.text()
        let parsed = text
        try { parsed = JSON.parse(text) } catch (_) { /* plain text */ }
        success({ statusCode: res.status, data: parsed, header: Object.fromEntries(res.headers) })
      })
      .catch((err) => fail({ errMsg: String(err) }))
  },
  uploadFile({ url, filePath, name, formData, success, fail }) {
    const form = new FormData()
    for (const key of Object.keys(formData || {})) form.append(key, formData[key])
    form.append(name, new Blob([fs.readFileSync(filePath)]), path.basename(filePath))
    fetch(url, { method: 'POST', body: form })
      .then(async (res) => success({ statusCode: res.status, data: await res.text() }))
      .catch((err) => fail({ errMsg: String(err) }))
  },
}

const { WxAuth } = require(path.join(__dirname, '..', '..', 'static', 'wxauth-miniprogram.js'))

async function main() {
  const auth = new WxAuth({ baseUrl: base, appId, clientId, clientSecret, scope: 'flow' })
  const tokens = await auth.login()
  const firstUser = auth.user
  const profile = await auth.saveProfile(await sim('/__sim/ma/userinfo', { appid: appId, user }))
  const phone = await auth.savePhone({ code: (await sim('/__sim/codes/phone', { appid: appId, user })).code })
  const oneShot = await auth.loginOneShot()
  const oldPhone = await auth.savePhone(await sim('/__sim/ma/phone', { appid: appId, user }))
  let chosen = null
  let nicknameOnly = null
  let webViewTicket = null
  if (avatarFile) {
    chosen = await auth.saveProfile({ nickname: '小爱 Ai', avatarPath: avatarFile })
    nicknameOnly = await auth.saveProfile({ nickname: '小爱' })
    webViewTicket = await auth.webViewTicket()
  }
  let refused = null
  try {
    await auth.token({ grant_type: 'flow', appId, openId: firstUser.openId, ticket: 'forged' })
  } catch (error) {
    refused = { status: error.status, error: error.body.error }
  }
  console.log(JSON.stringify({
    tokens, firstUser, profile, phone, oneShot, oldPhone, refused, chosen, nicknameOnly, webViewTicket,
  }))
}

main().catch((error) => {
  console.error(error.stack || String(error))
  process.exit(1)
})
