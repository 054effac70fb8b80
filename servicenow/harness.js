#!/usr/bin/env node
// A stand-in ServiceNow, just enough to run the "iLert back-sync push" business
// rule under Node. Everything the rule depends on is read FROM THE UPDATE SET
// XML (condition, script, REST message, HTTP method, headers, Basic auth
// profile, property): what an admin imports is what is tested.
//
//   const { fire } = require('./harness');
//   fire({ record, previous, user, properties, token, endpoint, answer })
//   node servicenow/harness.js '<json options>'   (or '-' / nothing: options on stdin)
//
// Options (all optional):
//   record      the incident as saved: { field: value } strings, e.g. sys_id, number,
//               state, correlation_id. Missing incident fields read as ''.
//   previous    the incident before the save, same shape. null or absent: an insert
//               (then every non-empty field counts as changed).
//   user        gs.getUserName() of whoever saves it; default 'service.desk'.
//   properties  { name: value } overriding the update set's sys_properties.
//   token       the password the admin typed into the Basic auth profile; default:
//               the update set's (empty).
//   endpoint    the URL the admin set on the REST message and its method; default:
//               the update set's placeholder.
//   answer      the endpoint's response: { status (default 200), body, headers }, or
//               { throws: 'message' } to make execute() throw.
//
// Result (printed as one line of JSON by the CLI; exit 1 if the rule threw, 2 on bad JSON):
//   { fired: bool,
//     requests: [{ method: 'POST', url, headers: { Authorization: 'Basic …',
//                  'Content-Type', Accept }, body: '<exact request body>', timeout_ms }],
//     logs: [{ level: 'warn'|'info'|'error'|…, message }] }
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const XML_PATH = path.join(__dirname, 'ilert-back-sync.xml');
const RULE_NAME = 'iLert back-sync push';

function unescapeXml(text) {
  return String(text)
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-fA-F]+);/g, (_, n) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&amp;/g, '&');
}

function parseAttrs(text) {
  const attrs = {};
  const re = /([\w:.-]+)="([^"]*)"/g;
  let m;
  while ((m = re.exec(text || ''))) attrs[m[1]] = unescapeXml(m[2]);
  return attrs;
}

// One record's payload: <record_update table=".."><TABLE action="..">fields</TABLE></record_update>.
// Field values are escaped text, so none contains '<'.
function parsePayload(payload) {
  const m = /<record_update\b[^>]*>\s*<([\w]+)\s+action="([^"]*)"\s*>([\s\S]*)<\/\1>\s*<\/record_update>/.exec(payload);
  if (!m) throw new Error('update set: a payload is not a record_update');
  const fields = {};
  const attrs = {};
  const re = /<([A-Za-z_][\w]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(?:\/>|>([^<]*)<\/\1>)/g;
  let f;
  while ((f = re.exec(m[3]))) {
    fields[f[1]] = f[3] === undefined ? '' : unescapeXml(f[3]);
    attrs[f[1]] = parseAttrs(f[2]);
  }
  return { table: m[1], action: m[2], fields, attrs };
}

// The update set: its sys_update_xml rows, each with its record unescaped from <payload>.
function loadUpdateSet(xmlText) {
  const xml = xmlText === undefined ? fs.readFileSync(XML_PATH, 'utf8') : xmlText;
  const updates = [];
  const re = /<sys_update_xml\b[^>]*>([\s\S]*?)<\/sys_update_xml>/g;
  let m;
  while ((m = re.exec(xml))) {
    const body = m[1];
    const get = (name) => {
      const g = new RegExp(`<${name}\\b[^>]*?(?:/>|>([^<]*)</${name}>)`).exec(body);
      return g && g[1] !== undefined ? unescapeXml(g[1]) : '';
    };
    const record = parsePayload(get('payload'));
    updates.push({ name: get('name'), table: get('table'), type: get('type'), targetName: get('target_name'), record });
  }
  const records = updates.map((u) => u.record);
  const find = (table, pred) => records.filter((r) => r.table === table && pred(r.fields));
  return { xml, updates, records, find };
}

function base64(text) {
  return Buffer.from(String(text), 'utf8').toString('base64');
}

// A GlideElement stand-in: the field's value as a string, and whether it changed.
function glideElement(name, value, previousValue, isInsert) {
  const v = value === undefined || value === null ? '' : String(value);
  const p = previousValue === undefined || previousValue === null ? '' : String(previousValue);
  // On insert ServiceNow reports a field as changed when it has a value.
  const changed = isInsert ? v !== '' : v !== p;
  return {
    toString() { return v; },
    valueOf() { return v; },
    getValue() { return v; },
    getDisplayValue() { return v; },
    nil() { return v === ''; },
    changes() { return changed; },
    changesTo(x) { return changed && v === String(x); },
    changesFrom(x) { return changed && p === String(x); },
    getName() { return name; },
  };
}

// Fields every incident has, so the rule can read them even when a test leaves them out.
const INCIDENT_FIELDS = ['sys_id', 'number', 'state', 'correlation_id', 'short_description'];

function buildCurrent(record, previous) {
  const isInsert = previous === null || previous === undefined;
  const prev = previous || {};
  const names = new Set(INCIDENT_FIELDS.concat(Object.keys(record), Object.keys(prev)));
  const current = {};
  for (const name of names) current[name] = glideElement(name, record[name], prev[name], isInsert);
  Object.defineProperties(current, {
    getUniqueValue: { value: () => String(record.sys_id === undefined ? '' : record.sys_id) },
    getValue: {
      value: (name) => {
        const v = record[name];
        // GlideRecord.getValue gives null for an empty field.
        return v === undefined || v === null || v === '' ? null : String(v);
      },
    },
    getDisplayValue: { value: (name) => (name ? String(record[name] || '') : String(record.number || '')) },
    getTableName: { value: () => 'incident' },
    isNewRecord: { value: () => false },
    operation: { value: () => (isInsert ? 'insert' : 'update') },
  });
  return current;
}

function buildPrevious(record, previous) {
  if (previous === null || previous === undefined) return null;
  return buildCurrent(Object.assign({}, previous), Object.assign({}, previous));
}

function buildGs({ user, propertyValues, logs, propertyReads }) {
  const log = (level) => (msg) => { logs.push({ level, message: String(msg) }); };
  return {
    getUserName: () => user,
    getProperty: (name, dflt) => {
      propertyReads.push(String(name));
      if (Object.prototype.hasOwnProperty.call(propertyValues, name)) return propertyValues[name];
      return dflt === undefined ? null : dflt;
    },
    warn: log('warn'),
    info: log('info'),
    error: log('error'),
    log: log('log'),
    debug: log('debug'),
    print: log('print'),
  };
}

// sn_ws.RESTMessageV2 resolved from the update set's REST records.
function buildSnWs({ set, token, endpoint, answer, requests }) {
  function RESTMessageV2(messageName, methodName) {
    if (!(this instanceof RESTMessageV2)) throw new Error('RESTMessageV2 needs new');
    const msg = set.find('sys_rest_message', (f) => f.name === String(messageName))[0];
    if (!msg) throw new Error(`REST message not found: ${messageName}`);
    const msgId = msg.fields.sys_id;
    const fn = set.find('sys_rest_message_fn',
      (f) => f.rest_message === msgId && f.function_name === String(methodName))[0];
    if (!fn) throw new Error(`HTTP method not found: ${messageName} / ${methodName}`);
    const fnId = fn.fields.sys_id;

    // The admin sets the endpoint on the message and on its method (ServiceNow does
    // not carry an edit of one over to the other); `endpoint` stands for both.
    let url = endpoint !== undefined && endpoint !== null
      ? String(endpoint)
      : (fn.fields.rest_endpoint || msg.fields.rest_endpoint);
    let method = (fn.fields.http_method || 'get').toUpperCase();
    let body = fn.fields.content || '';
    let timeoutMs = null;
    const headers = {};
    for (const h of set.find('sys_rest_message_headers', (f) => f.rest_message === msgId)) {
      headers[h.fields.name] = h.fields.value;
    }
    for (const h of set.find('sys_rest_message_fn_headers', (f) => f.rest_message_function === fnId)) {
      headers[h.fields.name] = h.fields.value;
    }
    let auth = null;
    const authSource = !fn.fields.authentication_type || fn.fields.authentication_type === 'inherit_from_parent'
      ? msg : fn;
    if (authSource.fields.authentication_type === 'basic') {
      const profileId = authSource.fields.basic_auth_profile;
      const profile = set.find('sys_auth_profile_basic', (f) => f.sys_id === profileId)[0];
      if (!profile) throw new Error(`Basic auth profile not found: ${profileId}`);
      // The password is what the admin typed into the profile, never the update set's.
      const password = token !== undefined && token !== null ? String(token) : profile.fields.password;
      auth = { user: profile.fields.username, password };
    }
    const params = {};
    const substitute = (text) => String(text).replace(/\$\{([^}]+)\}/g,
      (whole, name) => (Object.prototype.hasOwnProperty.call(params, name) ? params[name] : whole));

    this.setRequestBody = (text) => { body = String(text); };
    this.getRequestBody = () => body;
    this.setHttpTimeout = (ms) => { timeoutMs = Number(ms); };
    this.setRequestHeader = (name, value) => { headers[String(name)] = String(value); };
    this.getRequestHeaders = () => Object.assign({}, headers);
    this.setEndpoint = (u) => { url = String(u); };
    this.getEndpoint = () => substitute(url);
    this.setHttpMethod = (m) => { method = String(m).toUpperCase(); };
    this.setBasicAuth = (u, p) => { auth = { user: String(u), password: String(p) }; };
    this.setStringParameter = (n, v) => { params[String(n)] = String(v); };
    this.setStringParameterNoEscape = this.setStringParameter;
    this.setQueryParameter = (n, v) => {
      url += (url.indexOf('?') === -1 ? '?' : '&') + encodeURIComponent(n) + '=' + encodeURIComponent(v);
    };
    this.execute = () => {
      const sent = {};
      if (auth) sent.Authorization = 'Basic ' + base64(`${auth.user}:${auth.password}`);
      for (const k of Object.keys(headers)) sent[k] = substitute(headers[k]);
      requests.push({ method, url: substitute(url), headers: sent, body: substitute(body), timeout_ms: timeoutMs });
      const a = answer || {};
      if (a.throws !== undefined && a.throws !== null && a.throws !== false) {
        throw new Error(typeof a.throws === 'string' ? a.throws : 'connection failed');
      }
      const status = a.status === undefined ? 200 : Number(a.status);
      const responseBody = a.body === undefined ? '{"action":"accepted"}' : String(a.body);
      const responseHeaders = Object.assign({}, a.headers || {});
      const error = !(status >= 200 && status < 300);
      return {
        getStatusCode: () => status,
        getBody: () => responseBody,
        haveError: () => error,
        getErrorCode: () => (error ? 1 : 0),
        getErrorMessage: () => (error ? `HTTP ${status}` : ''),
        getHeader: (n) => (responseHeaders[n] === undefined ? null : String(responseHeaders[n])),
        getHeaders: () => Object.assign({}, responseHeaders),
        getAllHeaders: () => Object.keys(responseHeaders).map((k) => ({ name: k, value: responseHeaders[k] })),
        waitForResponse: () => {},
      };
    };
    this.executeAsync = this.execute;
  }
  return { RESTMessageV2 };
}

// Saves `record` as `user` (an update from `previous`, or an insert when previous is
// null/absent) and runs the business rule the update set carries: its condition, and
// when that holds, its script.
function fire(options) {
  const opts = options || {};
  const set = loadUpdateSet(opts.xml);
  const rule = set.find('sys_script', (f) => f.name === RULE_NAME)[0];
  if (!rule) throw new Error(`business rule not in the update set: ${RULE_NAME}`);

  const propertyValues = {};
  for (const p of set.find('sys_properties', () => true)) propertyValues[p.fields.name] = p.fields.value;
  Object.assign(propertyValues, opts.properties || {});

  const record = Object.assign({}, opts.record || {});
  const previous = opts.previous === undefined ? null : opts.previous;
  const requests = [];
  const logs = [];
  const propertyReads = [];
  const gs = buildGs({ user: opts.user === undefined ? 'service.desk' : String(opts.user), propertyValues, logs, propertyReads });
  const sn_ws = buildSnWs({ set, token: opts.token, endpoint: opts.endpoint, answer: opts.answer, requests });

  // The condition sees the record as it is being saved (changes() works).
  const conditionContext = vm.createContext({ current: buildCurrent(record, previous), gs });
  const condition = rule.fields.condition.trim();
  const fired = condition === '' ? true : Boolean(vm.runInContext(`(${condition}\n)`, conditionContext, { filename: 'condition' }));
  const conditionPropertyReads = propertyReads.splice(0);
  const result = { fired, requests, logs };
  // Not enumerable: kept out of the CLI's JSON, there for tests.
  Object.defineProperty(result, 'propertyReads', { value: { condition: conditionPropertyReads, script: propertyReads } });
  if (!fired) return result;

  // Async rule: it runs later, so previous is null; sn_ws is only needed here.
  const scriptContext = vm.createContext({ current: buildCurrent(record, previous), previous: null, gs, sn_ws });
  vm.runInContext(rule.fields.script, scriptContext, { filename: 'script' });
  return result;
}

module.exports = { fire, loadUpdateSet, parsePayload, unescapeXml, XML_PATH };

if (require.main === module) {
  const arg = process.argv[2];
  let options;
  try {
    options = arg === undefined || arg === '-' ? JSON.parse(fs.readFileSync(0, 'utf8') || '{}') : JSON.parse(arg);
  } catch (e) {
    process.stderr.write(`harness: options must be JSON: ${e.message}\n`);
    process.exit(2);
  }
  try {
    process.stdout.write(JSON.stringify(fire(options)) + '\n');
  } catch (e) {
    process.stderr.write(`harness: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  }
}
