// The `wx` object of a Mini Program page, for running static/wxauth-miniprogram.js under Node:
// wx.login asks the WeChat simulator for a code for `user`, wx.request and wx.uploadFile are
// fetch. Shared by the scripts in this directory.
//
//   const { sim } = require('./wx_mock.cjs').install({ simBase, appId, user })
'use strict'
const fs = require('fs')
const path = require('path')

function install({ simBase, appId, user }) {
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
      fetch(url, { method, headers: header, body: json ? JSON.stringify(data) : data })
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
  return { sim }
}

module.exports = { install }
