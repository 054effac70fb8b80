'use strict';
// Runs the "iLert back-sync push" business rule, as the update set carries it,
// against the stand-in ServiceNow in ../harness.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const DIR = path.join(__dirname, '..');
const BUILD = path.join(DIR, 'build-update-set.js');
const HARNESS = path.join(DIR, 'harness.js');
const CONDITION_FILE = path.join(DIR, 'ilert-back-sync.condition.js');
const SCRIPT_FILE = path.join(DIR, 'ilert-back-sync.script.js');
const XML_FILE = path.join(DIR, 'ilert-back-sync.xml');
const { fire, loadUpdateSet } = require(HARNESS);

const PLACEHOLDER = 'https://REPLACE-WITH-YOUR-FUNCTION/servicenow';
const SYS_ID = '3f2a9c4e7b1d4a6c8e0f1a2b3c4d5e6f';
const TOKEN = 'tok-9f8e7d6c5b4a-not-in-any-file';

function incident(fields) {
  return Object.assign({
    sys_id: SYS_ID,
    number: 'INC0010001',
    state: '2',
    correlation_id: 'ilert:123',
    short_description: 'Disk full on db-1',
  }, fields || {});
}

// A desk user moves an iLert incident from New to `state`.
function move(state, extra) {
  return fire(Object.assign({
    record: incident({ state: String(state) }),
    previous: incident({ state: '1' }),
    user: 'beth.anglin',
    token: TOKEN,
  }, extra || {}));
}

function basic(user, password) {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

function read(file) {
  return fs.readFileSync(file, 'utf8');
}

// --- the update set -------------------------------------------------------------

test('the committed XML is what build-update-set.js generates (--check passes)', () => {
  const r = spawnSync(process.execPath, [BUILD, '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('--check exits 1 with a message when the XML differs', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ilert-us-'));
  try {
    const copy = path.join(tmp, 'ilert-back-sync.xml');
    fs.writeFileSync(copy, read(XML_FILE).replace('&amp;amp;&amp;amp;', '||'));
    const r = spawnSync(process.execPath, [BUILD, '--check', '--xml', copy], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /differs/);
    const missing = spawnSync(process.execPath, [BUILD, '--check', '--xml', path.join(tmp, 'none.xml')], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot be read/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the XML embeds exactly the condition and script files', () => {
  const set = loadUpdateSet();
  const rule = set.find('sys_script', (f) => f.name === 'iLert back-sync push');
  assert.equal(rule.length, 1);
  assert.equal(rule[0].fields.condition, read(CONDITION_FILE).trim());
  assert.equal(rule[0].fields.script, read(SCRIPT_FILE));
});

test('the update set has the envelope and the records an admin imports', () => {
  const xml = read(XML_FILE);
  assert.match(xml, /^<\?xml version="1\.0" encoding="UTF-8"\?><unload unload_date="[^"]+">/);
  assert.equal((xml.match(/<sys_remote_update_set action="INSERT_OR_UPDATE">/g) || []).length, 1);
  const remote = /<sys_remote_update_set[^>]*>([\s\S]*?)<\/sys_remote_update_set>/.exec(xml)[1];
  assert.match(remote, /<name>iLert back-sync push<\/name>/);
  assert.match(remote, /<state>loaded<\/state>/);
  assert.match(remote, /<application display_value="Global">global<\/application>/);
  const usId = /<sys_id>([0-9a-f]{32})<\/sys_id>/.exec(remote)[1];

  const set = loadUpdateSet();
  assert.deepEqual(set.updates.map((u) => u.record.table).sort(), [
    'sys_auth_profile_basic', 'sys_properties', 'sys_rest_message', 'sys_rest_message_fn',
    'sys_rest_message_fn_headers', 'sys_rest_message_fn_headers', 'sys_script',
  ]);
  const ids = new Set();
  for (const chunk of xml.match(/<sys_update_xml action="INSERT_OR_UPDATE">[\s\S]*?<\/sys_update_xml>/g)) {
    assert.match(chunk, /<action>INSERT_OR_UPDATE<\/action>/);
    assert.match(chunk, /<category>customer<\/category>/);
    assert.match(chunk, /<update_domain>global<\/update_domain>/);
    assert.match(chunk, /<type>[^<]+<\/type>/);
    assert.match(chunk, /<target_name>[^<]+<\/target_name>/);
    assert.match(chunk, /<table(\/>|>[^<]*<\/table>)/);
    assert.ok(chunk.includes(`<remote_update_set display_value="iLert back-sync push">${usId}</remote_update_set>`));
  }
  for (const u of set.updates) {
    const f = u.record.fields;
    assert.match(f.sys_id, /^[0-9a-f]{32}$/);
    assert.ok(!ids.has(f.sys_id), `duplicate sys_id ${f.sys_id}`);
    ids.add(f.sys_id);
    assert.equal(u.name, `${u.record.table}_${f.sys_id}`);
    assert.equal(u.record.action, 'INSERT_OR_UPDATE');
    assert.equal(f.sys_class_name, u.record.table);
  }
});

test('the business rule: async on incident, insert and update, active, advanced, order 100', () => {
  const f = loadUpdateSet().find('sys_script', () => true)[0].fields;
  assert.equal(f.collection, 'incident');
  assert.equal(f.when, 'async');
  assert.equal(f.action_insert, 'true');
  assert.equal(f.action_update, 'true');
  assert.equal(f.action_delete, 'false');
  assert.equal(f.action_query, 'false');
  assert.equal(f.active, 'true');
  assert.equal(f.advanced, 'true');
  assert.equal(f.order, '100');
  assert.ok(f.description.length > 0);
  // ServiceNow's condition field has long been 254 characters on some instances.
  assert.ok(f.condition.length <= 254, `condition is ${f.condition.length} characters`);
});

test('the REST message, its push method, headers and Basic auth profile', () => {
  const set = loadUpdateSet();
  const msg = set.find('sys_rest_message', (f) => f.name === 'iLert back-sync');
  assert.equal(msg.length, 1);
  const profile = set.find('sys_auth_profile_basic', (f) => f.name === 'iLert back-sync');
  assert.equal(profile.length, 1);
  assert.equal(profile[0].fields.username, 'ilert-servicenow');
  assert.equal(profile[0].fields.password, '', 'an update set must never carry the token');
  assert.equal(msg[0].fields.rest_endpoint, PLACEHOLDER);
  assert.equal(msg[0].fields.authentication_type, 'basic');
  assert.equal(msg[0].fields.basic_auth_profile, profile[0].fields.sys_id);
  const fn = set.find('sys_rest_message_fn', (f) => f.rest_message === msg[0].fields.sys_id);
  assert.equal(fn.length, 1);
  assert.equal(fn[0].fields.function_name, 'push');
  assert.equal(fn[0].fields.http_method, 'post');
  assert.equal(fn[0].fields.authentication_type, 'inherit_from_parent');
  assert.equal(fn[0].fields.rest_endpoint, msg[0].fields.rest_endpoint);
  const headers = set.find('sys_rest_message_fn_headers', (f) => f.rest_message_function === fn[0].fields.sys_id)
    .map((h) => `${h.fields.name}: ${h.fields.value}`).sort();
  assert.deepEqual(headers, ['Accept: application/json', 'Content-Type: application/json']);
  const prop = set.find('sys_properties', (f) => f.name === 'ilert_servicenow.integration_user');
  assert.equal(prop.length, 1);
  assert.equal(prop[0].fields.type, 'string');
  assert.equal(prop[0].fields.value, 'ilert.integration');
  assert.match(prop[0].fields.description, /integration user/i);
});

// --- when it fires ----------------------------------------------------------------

for (const state of [2, 6, 7, 8]) {
  test(`a desk user moving an ilert:123 incident to ${state} pushes its sys_id once`, () => {
    const out = move(state);
    assert.equal(out.fired, true);
    assert.equal(out.requests.length, 1);
    const req = out.requests[0];
    assert.equal(req.method, 'POST');
    assert.equal(req.url, PLACEHOLDER);
    assert.deepEqual(req.headers, {
      Authorization: basic('ilert-servicenow', TOKEN),
      'Content-Type': 'application/json',
      Accept: 'application/json',
    });
    assert.deepEqual(JSON.parse(req.body), { sys_id: SYS_ID });
    assert.ok(req.timeout_ms >= 1000 && req.timeout_ms <= 10000, `timeout ${req.timeout_ms} ms`);
    assert.deepEqual(out.logs, []);
  });
}

test('the body is the sys_id and nothing else, whatever the record holds', () => {
  const other = '9a8b7c6d5e4f40312a1b2c3d4e5f6071';
  const out = fire({
    record: incident({
      sys_id: other,
      state: '6',
      number: 'INC0099999',
      short_description: 'quote " backslash \\ brace } and </payload>',
      close_notes: 'Fixed by restarting',
      assigned_to: '46d44a23a9fe19810012d100cca80666',
      correlation_id: 'ilert:987654321',
    }),
    previous: incident({ sys_id: other, state: '2', correlation_id: 'ilert:987654321' }),
    user: 'beth.anglin',
    token: TOKEN,
  });
  assert.equal(out.requests.length, 1);
  assert.equal(out.requests[0].body, JSON.stringify({ sys_id: other }));
});

test('the endpoint the admin sets is the one posted to', () => {
  const out = move(6, { endpoint: 'http://127.0.0.1:9999/servicenow' });
  assert.equal(out.requests[0].url, 'http://127.0.0.1:9999/servicenow');
});

test('an incident inserted already In Progress by a desk user fires too', () => {
  const out = fire({ record: incident({ state: '2' }), previous: null, user: 'beth.anglin', token: TOKEN });
  assert.equal(out.fired, true);
  assert.equal(out.requests.length, 1);
});

test('a user once the integration user fires when the property names someone else', () => {
  const out = move(6, { user: 'ilert.integration', properties: { 'ilert_servicenow.integration_user': 'svc.ilert' } });
  assert.equal(out.fired, true);
});

// --- when it does not -------------------------------------------------------------

function assertQuiet(out) {
  assert.equal(out.fired, false);
  assert.deepEqual(out.requests, []);
  assert.deepEqual(out.logs, []);
}

for (const state of [2, 6, 7, 8]) {
  test(`the integration user (default property) moving it to ${state} does not fire`, () => {
    assertQuiet(move(state, { user: 'ilert.integration' }));
  });
}

test('the integration user named by a changed property does not fire', () => {
  assertQuiet(move(6, { user: 'svc.ilert', properties: { 'ilert_servicenow.integration_user': 'svc.ilert' } }));
});

test('the integration user creating an iLert incident does not fire', () => {
  assertQuiet(fire({ record: incident({ state: '2' }), previous: null, user: 'ilert.integration', token: TOKEN }));
});

for (const state of [1, 3]) {
  test(`moving to state ${state} does not fire`, () => {
    assertQuiet(fire({
      record: incident({ state: String(state) }),
      previous: incident({ state: state === 1 ? '2' : '1' }),
      user: 'beth.anglin',
      token: TOKEN,
    }));
  });
}

test('a save that leaves the state as it was does not fire', () => {
  for (const state of ['2', '6', '7', '8']) {
    assertQuiet(fire({
      record: incident({ state, short_description: 'edited' }),
      previous: incident({ state }),
      user: 'beth.anglin',
      token: TOKEN,
    }));
  }
});

for (const correlation of [
  'ilert:123:duplicate-of-INC0010002',
  'ilert:',
  'ilert:12a',
  ' ilert:123',
  'ilert:123 ',
  'ILERT:123',
  'pagerduty:123',
  '123',
  '',
]) {
  test(`correlation id ${JSON.stringify(correlation)} does not fire`, () => {
    assertQuiet(fire({
      record: incident({ state: '6', correlation_id: correlation }),
      previous: incident({ state: '2', correlation_id: correlation }),
      user: 'beth.anglin',
      token: TOKEN,
    }));
  });
}

// --- failures ------------------------------------------------------------------

function assertWarnsSafely(out) {
  assert.equal(out.fired, true);
  assert.equal(out.requests.length, 1, 'no retries');
  assert.equal(out.logs.length, 1);
  const { level, message } = out.logs[0];
  assert.equal(level, 'warn');
  assert.match(message, /scheduled pass will sync it within a minute/);
  assert.ok(!message.includes(TOKEN), 'names the token');
  assert.ok(!/https?:\/\//.test(message), 'names a URL');
  assert.ok(!message.includes('REPLACE-WITH-YOUR-FUNCTION'), 'names the host');
  assert.ok(!message.includes('127.0.0.1'), 'names the host');
  assert.ok(!message.includes('SECRET-BODY'), 'logs the response body');
  assert.ok(!message.includes('X-Secret-Header'), 'logs the response headers');
}

const FAILING_ANSWER_HEADERS = { 'X-Secret-Header': 'SECRET-HEADER-VALUE' };

for (const status of [500, 503, 401, 404, 0]) {
  test(`an endpoint answering ${status} only warns`, () => {
    let out;
    assert.doesNotThrow(() => {
      out = move(6, {
        endpoint: 'https://127.0.0.1:1/servicenow',
        answer: { status, body: `SECRET-BODY ${TOKEN} https://127.0.0.1:1/servicenow`, headers: FAILING_ANSWER_HEADERS },
      });
    });
    assertWarnsSafely(out);
    assert.match(out.logs[0].message, new RegExp(`HTTP ${status}\\b`));
  });
}

test('execute() throwing (with the URL in its message) only warns', () => {
  let out;
  assert.doesNotThrow(() => {
    out = move(7, {
      endpoint: 'https://127.0.0.1:1/servicenow',
      answer: { throws: `java.net.ConnectException: https://127.0.0.1:1/servicenow ${TOKEN} timed out` },
    });
  });
  assertWarnsSafely(out);
});

test('a 2xx answer logs nothing, whatever its body', () => {
  for (const body of ['{"action":"accepted"}', '{"action":"resolved"}', '{"action":"unchanged"}', '{"action":"ignored"}', '']) {
    assert.deepEqual(move(6, { answer: { status: 200, body } }).logs, []);
  }
  assert.deepEqual(move(6, { answer: { status: 204, body: '' } }).logs, []);
});

// --- what the files hold -------------------------------------------------------

test('the script reads no property, and sets no URL, credentials or headers of its own', () => {
  const out = move(6);
  assert.deepEqual(out.propertyReads.script, []);
  const script = read(SCRIPT_FILE);
  for (const banned of ['getProperty', 'setEndpoint', 'setBasicAuth', 'setRequestHeader', 'setAuthenticationProfile',
    'Authorization', 'Bearer', 'password', 'getBody', 'getHeader']) {
    assert.ok(!script.includes(banned), `script uses ${banned}`);
  }
  assert.match(script, /new sn_ws\.RESTMessageV2\('iLert back-sync', 'push'\)/);
  assert.match(script, /setRequestBody\(JSON\.stringify\(\{ sys_id: String\(current\.getUniqueValue\(\)\) \}\)\)/);
  assert.match(script, /setHttpTimeout\(/);
  assert.match(script, /^\(function executeRule\(current, previous \/\*null when async\*\/\) \{/);
  assert.match(script, /\}\)\(current, previous\);\s*$/);
});

test('no token, password or URL but the placeholder endpoint in the script, condition or XML', () => {
  const texts = { script: read(SCRIPT_FILE), condition: read(CONDITION_FILE), xml: read(XML_FILE) };
  for (const [name, text] of Object.entries(texts)) {
    const urls = text.match(/[a-z][a-z0-9+.-]*:\/\/[^\s<>"'&)]+/gi) || [];
    for (const url of urls) assert.equal(url, PLACEHOLDER, `${name} holds ${url}`);
    assert.ok(!text.includes(TOKEN));
    assert.ok(!/Bearer\s/.test(text), `${name} holds a bearer token`);
  }
  assert.equal((texts.script.match(/https?:\/\//g) || []).length, 0);
  assert.equal((texts.condition.match(/https?:\/\//g) || []).length, 0);
  // Every password-like field in any record is empty.
  for (const rec of loadUpdateSet().records) {
    for (const [field, value] of Object.entries(rec.fields)) {
      if (/password|secret|token/i.test(field)) assert.equal(value, '', `${rec.table}.${field} is not empty`);
    }
  }
});

test('the condition and script are ES5 (no =>, let, const, template strings, includes)', () => {
  for (const file of [CONDITION_FILE, SCRIPT_FILE]) {
    const text = read(file);
    assert.ok(!text.includes('=>'), `${file}: arrow function`);
    assert.ok(!/\blet\s/.test(text), `${file}: let`);
    assert.ok(!/\bconst\s/.test(text), `${file}: const`);
    assert.ok(!text.includes('`'), `${file}: template string`);
    assert.ok(!/\.includes\(/.test(text), `${file}: includes()`);
    assert.ok(!/\bclass\s/.test(text), `${file}: class`);
  }
});

test('the CLI prints the result as JSON', () => {
  const options = {
    record: incident({ state: '6' }),
    previous: incident({ state: '2' }),
    user: 'beth.anglin',
    token: TOKEN,
  };
  const r = spawnSync(process.execPath, [HARNESS, JSON.stringify(options)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ['fired', 'requests', 'logs']);
  assert.equal(out.fired, true);
  assert.deepEqual(JSON.parse(out.requests[0].body), { sys_id: SYS_ID });
  assert.equal(out.requests[0].headers.Authorization, basic('ilert-servicenow', TOKEN));

  const bad = spawnSync(process.execPath, [HARNESS, '{not json'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
});
