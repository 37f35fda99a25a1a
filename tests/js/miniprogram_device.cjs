// Runs static/wxauth-miniprogram.js as the Mini Program's device-approval page would: wx.login
// asks the WeChat simulator for a code, wx.request is fetch; the page was opened by scanning the
// verification page's Mini Program code, so it holds the user code as its scene. Started by the
// Rust integration test `device_approval::the_javascript_helper_approves_a_device`.
//
//   node tests/js/miniprogram_device.cjs WXAUTH_BASE SIM_BASE APPID CLIENT_ID CLIENT_SECRET USER SCENE
//
// Prints one JSON line with what the page saw; exits non-zero on any failure.
'use strict'
const path = require('path')
const [base, simBase, appId, clientId, clientSecret, user, scene] = process.argv.slice(2)

require(path.join(__dirname, 'wx_mock.cjs')).install({ simBase, appId, user })

const { WxAuth } = require(path.join(__dirname, '..', '..', 'static', 'wxauth-miniprogram.js'))

async function main() {
  const auth = new WxAuth({ baseUrl: base, appId, clientId, clientSecret, scope: 'flow' })
  await auth.login()
  // WeChat hands the page its scene URL-encoded.
  const asked = await auth.describeDevice(encodeURIComponent(scene))
  const approved = await auth.approveDevice(encodeURIComponent(scene))
  let again = null
  try {
    await auth.approveDevice(scene)
  } catch (error) {
    again = { status: error.status, error: error.body.error }
  }
  console.log(JSON.stringify({ asked, approved, again }))
}

main().catch((error) => {
  console.error(error.stack || String(error))
  process.exit(1)
})
