// Runs static/wxauth-miniprogram.js the way a Mini Program page would, with a `wx` object whose
// wx.login asks the WeChat simulator for a code and whose wx.request is fetch. Started by the
// Rust integration test `mini_program::the_javascript_helper_signs_in_end_to_end`.
//
//   node tests/js/miniprogram_helper.cjs WXAUTH_BASE SIM_BASE APPID CLIENT_ID CLIENT_SECRET USER
//
// Prints one JSON line with what the page would see; exits non-zero on any failure.
// AVATAR_FILE (optional) is a picture standing in for the temporary file chooseAvatar gives.
'use strict'
const path = require('path')
const [base, simBase, appId, clientId, clientSecret, user, avatarFile] = process.argv.slice(2)

const { sim } = require(path.join(__dirname, 'wx_mock.cjs')).install({ simBase, appId, user })

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
