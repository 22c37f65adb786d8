// validate.js checks an OpenWhisk controller (dedupfn's in-test owtest
// server) with the official JavaScript client (npm "openwhisk" 3.21.x):
// create and update an action, invoke it blocking (full record and
// result only) and non-blocking, read its activations, and see the
// documented errors for an application error and a missing action.
//
// Env: OW_APIHOST (http://127.0.0.1:PORT), OW_AUTH (UUID:KEY), and
// OW_FAIL_ACTION, an existing action that always fails. NODE_PATH must
// reach the installed openwhisk package. Exit 0 and a last line
// "validate: ok" on success.
'use strict'

const assert = require('assert/strict')
const openwhisk = require('openwhisk')

const ow = openwhisk({ apihost: process.env.OW_APIHOST, api_key: process.env.OW_AUTH })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const name = 'validate-' + process.pid

  const created = await ow.actions.create({ name, action: 'function main(p) { return p }', kind: 'nodejs:20', params: { fixed: 'yes' } })
  assert.equal(created.name, name)
  assert.equal(created.version, '0.0.1')
  const updated = await ow.actions.update({ name, action: 'function main(p) { return p } // v2', kind: 'nodejs:20', params: { fixed: 'yes' } })
  assert.equal(updated.version, '0.0.2')
  const got = await ow.actions.get({ name })
  assert.equal(got.exec.kind, 'nodejs:20')
  assert.equal(got.version, '0.0.2')
  console.log('validate: created', name, 'version', got.version)

  const act = await ow.actions.invoke({ name, params: { greeting: 'hello' }, blocking: true })
  assert.ok(act.activationId, 'blocking invoke returns an activationId')
  assert.equal(act.response.success, true)
  assert.equal(act.response.status, 'success')
  assert.equal(act.response.result.greeting, 'hello')
  assert.equal(act.response.result.fixed, 'yes', 'default parameters are merged')
  console.log('validate: invoked', act.activationId, JSON.stringify(act.response.result))

  const result = await ow.actions.invoke({ name, params: { n: 7 }, blocking: true, result: true })
  assert.equal(result.n, 7)

  const rec = await ow.activations.get({ name: act.activationId })
  assert.equal(rec.activationId, act.activationId)
  assert.equal(rec.name, name)
  assert.equal(rec.response.result.greeting, 'hello')
  assert.ok(rec.duration >= 0 && rec.end >= rec.start)
  console.log('validate: activation', rec.activationId, 'duration', rec.duration)

  const nb = await ow.actions.invoke({ name, params: { async: true } })
  assert.ok(nb.activationId)
  let late
  for (let i = 0; i < 50 && !late; i++) {
    try {
      late = await ow.activations.get({ name: nb.activationId })
    } catch (e) {
      assert.equal(e.statusCode, 404)
      await sleep(50)
    }
  }
  assert.equal(late.response.result.async, true)

  if (process.env.OW_FAIL_ACTION) {
    await assert.rejects(ow.actions.invoke({ name: process.env.OW_FAIL_ACTION, blocking: true }), (e) => {
      assert.equal(e.statusCode, 502)
      assert.equal(e.error.response.status, 'application error')
      assert.ok(e.error.response.result.error)
      return true
    })
  }
  await assert.rejects(ow.actions.invoke({ name: 'no-such-action-' + process.pid, blocking: true }), (e) => {
    assert.equal(e.statusCode, 404)
    return true
  })
  console.log('validate: ok')
}

main().catch((e) => {
  console.error('validate: FAILED:', e && e.stack ? e.stack : e)
  process.exit(1)
})
