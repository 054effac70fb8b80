#!/usr/bin/env node
// Generates servicenow/ilert-back-sync.xml, the update set a ServiceNow admin
// imports, from the business rule's condition and script files and the fixed
// definitions below. The XML is generated, never edited by hand, so that what
// gets imported is exactly what the tests run.
//
//   node servicenow/build-update-set.js            write the XML
//   node servicenow/build-update-set.js --check    exit 1 if the XML on disk differs
//   --xml <path>                                   another XML file (tests use it)
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const DIR = __dirname;
const XML_PATH = path.join(DIR, 'ilert-back-sync.xml');
const CONDITION_PATH = path.join(DIR, 'ilert-back-sync.condition.js');
const SCRIPT_PATH = path.join(DIR, 'ilert-back-sync.script.js');

// Fixed so the output is reproducible; no meaning beyond that.
const STAMP = '2025-06-01 12:00:00';
const UPDATE_SET_NAME = 'iLert back-sync push';
const PLACEHOLDER_ENDPOINT = 'https://REPLACE-WITH-YOUR-FUNCTION/servicenow';

// Made-up, fixed sys_ids (32 hex): records keep their identity across re-imports.
const ID = {
  updateSet: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b20',
  businessRule: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b21',
  restMessage: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b22',
  authProfile: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b23',
  pushFunction: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b24',
  headerContentType: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b25',
  headerAccept: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b26',
  property: '4c1e7b2a9d3f4e0a8b6c5d7e9f0a1b27',
};
// The sys_update_xml rows that carry each record (ids of their own).
const UPDATE_ID = {
  businessRule: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a31',
  restMessage: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a32',
  authProfile: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a33',
  pushFunction: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a34',
  headerContentType: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a35',
  headerAccept: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a36',
  property: '9e2d6a4c1b7f4d3e8a5c0b9d7e6f5a37',
};

const GLOBAL = { display_value: 'Global' };
const GLOBAL_PACKAGE = { display_value: 'Global', source: 'global' };

function escapeXml(text) {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
}

function escapeAttr(text) {
  return escapeXml(text).replace(/"/g, '&quot;');
}

function element(name, value, attrs) {
  const a = Object.entries(attrs || {})
    .map(([k, v]) => ` ${k}="${escapeAttr(v)}"`)
    .join('');
  if (value === '' || value === null || value === undefined) return `<${name}${a}/>`;
  return `<${name}${a}>${escapeXml(value)}</${name}>`;
}

// Fields every record carries, after its own.
function systemFields(table, sysId) {
  return [
    ['sys_class_name', table],
    ['sys_created_by', 'admin'],
    ['sys_created_on', STAMP],
    ['sys_id', sysId],
    ['sys_mod_count', '0'],
    ['sys_package', 'global', GLOBAL_PACKAGE],
    ['sys_scope', 'global', GLOBAL],
    ['sys_update_name', `${table}_${sysId}`],
    ['sys_updated_by', 'admin'],
    ['sys_updated_on', STAMP],
  ];
}

function readSources() {
  // The condition field holds one expression: the file's text without its final newline.
  const condition = fs.readFileSync(CONDITION_PATH, 'utf8').trim();
  const script = fs.readFileSync(SCRIPT_PATH, 'utf8');
  return { condition, script };
}

// The records, in the order an admin would create them by hand.
function records({ condition, script }) {
  return [
    {
      key: 'authProfile',
      table: 'sys_auth_profile_basic',
      type: 'Basic Auth Configuration',
      targetName: 'iLert back-sync',
      associatedTable: '',
      fields: [
        ['name', 'iLert back-sync'],
        // Any user name: the function checks only the password, which is the
        // secret's servicenow_token. The admin types it; an update set never carries it.
        ['password', ''],
        ['username', 'ilert-servicenow'],
      ],
    },
    {
      key: 'restMessage',
      table: 'sys_rest_message',
      type: 'REST Message',
      targetName: 'iLert back-sync',
      associatedTable: '',
      fields: [
        ['access', 'package_private'],
        ['authentication_type', 'basic'],
        ['basic_auth_profile', ID.authProfile, { display_value: 'iLert back-sync' }],
        ['description',
          'Pushes an incident\'s sys_id to the ilert-servicenow function, which then ' +
          'accepts or resolves the iLert alert. Set the endpoint to the stack\'s push URL ' +
          '(here and on the "push" HTTP method) and the token in the Basic auth profile.'],
        ['name', 'iLert back-sync'],
        ['oauth2_profile', ''],
        ['rest_endpoint', PLACEHOLDER_ENDPOINT],
        ['use_mid_server', 'false'],
      ],
    },
    {
      key: 'pushFunction',
      table: 'sys_rest_message_fn',
      type: 'HTTP Method',
      targetName: 'push',
      associatedTable: '',
      fields: [
        ['authentication_type', 'inherit_from_parent'],
        ['basic_auth_profile', ''],
        // The body is set by the business rule script: {"sys_id": "..."} only.
        ['content', ''],
        ['function_name', 'push'],
        ['http_method', 'post'],
        ['oauth2_profile', ''],
        // ServiceNow copies the message's endpoint into a method and does not
        // propagate later edits, so the README has the admin set both.
        ['rest_endpoint', PLACEHOLDER_ENDPOINT],
        ['rest_message', ID.restMessage, { display_value: 'iLert back-sync' }],
        ['use_mid_server', 'false'],
      ],
    },
    {
      key: 'headerContentType',
      table: 'sys_rest_message_fn_headers',
      type: 'HTTP Header',
      targetName: 'Content-Type',
      associatedTable: '',
      fields: [
        ['name', 'Content-Type'],
        ['rest_message_function', ID.pushFunction, { display_value: 'push' }],
        ['value', 'application/json'],
      ],
    },
    {
      key: 'headerAccept',
      table: 'sys_rest_message_fn_headers',
      type: 'HTTP Header',
      targetName: 'Accept',
      associatedTable: '',
      fields: [
        ['name', 'Accept'],
        ['rest_message_function', ID.pushFunction, { display_value: 'push' }],
        ['value', 'application/json'],
      ],
    },
    {
      key: 'property',
      table: 'sys_properties',
      type: 'System Property',
      targetName: 'ilert_servicenow.integration_user',
      associatedTable: '',
      fields: [
        ['choices', ''],
        ['description',
          'User name of the iLert integration user (the one ilert-servicenow signs in as). ' +
          'Changes it makes are never pushed back: that keeps the sync loop-free.'],
        ['ignore_cache', 'false'],
        ['is_private', 'false'],
        ['name', 'ilert_servicenow.integration_user'],
        ['read_roles', ''],
        ['suffix', 'ilert_servicenow'],
        ['type', 'string'],
        ['value', 'ilert.integration'],
        ['write_roles', ''],
      ],
    },
    {
      key: 'businessRule',
      table: 'sys_script',
      type: 'Business Rule',
      targetName: 'iLert back-sync push',
      // A business rule's update is filed under the table it runs on.
      associatedTable: 'incident',
      fields: [
        ['abort_action', 'false'],
        ['access', 'package_private'],
        ['action_delete', 'false'],
        ['action_insert', 'true'],
        ['action_query', 'false'],
        ['action_update', 'true'],
        ['active', 'true'],
        ['add_message', 'false'],
        ['advanced', 'true'],
        ['change_fields', 'false'],
        ['client_callable', 'false'],
        ['collection', 'incident'],
        ['condition', condition],
        ['description',
          'Pushes the incident to the ilert-servicenow function as soon as the service desk ' +
          'moves an iLert incident to In Progress, Resolved, Closed or Canceled, so the iLert ' +
          'alert is accepted or resolved within seconds. Optional: without it the function\'s ' +
          'scheduled pass does the same within a minute. Never fires for the integration user ' +
          '(property ilert_servicenow.integration_user).'],
        ['execute_function', 'false'],
        ['filter_condition', '', { table: 'incident' }],
        ['is_rest', 'false'],
        ['message', ''],
        ['name', 'iLert back-sync push'],
        ['order', '100'],
        ['priority', '100'],
        ['rest_method', ''],
        ['rest_method_text', ''],
        ['rest_service', ''],
        ['rest_service_text', ''],
        ['rest_variables', ''],
        ['role_conditions', ''],
        ['script', script],
        ['sys_domain', 'global'],
        ['sys_domain_path', '/'],
        ['sys_overrides', ''],
        ['sys_policy', ''],
        ['template', ''],
        ['when', 'async'],
      ],
    },
  ];
}

function payloadOf(rec) {
  const sysId = ID[rec.key];
  const fields = rec.fields
    .concat(systemFields(rec.table, sysId))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([name, value, attrs]) => element(name, value, attrs));
  return '<?xml version="1.0" encoding="UTF-8"?>' +
    `<record_update table="${rec.table}">` +
    `<${rec.table} action="INSERT_OR_UPDATE">\n` +
    fields.join('\n') +
    `\n</${rec.table}>` +
    '</record_update>';
}

function updateXmlOf(rec) {
  const sysId = ID[rec.key];
  const updateId = UPDATE_ID[rec.key];
  const lines = [
    element('action', 'INSERT_OR_UPDATE'),
    element('application', 'global', GLOBAL),
    element('category', 'customer'),
    element('comments', ''),
    element('name', `${rec.table}_${sysId}`),
    element('payload', payloadOf(rec)),
    element('remote_update_set', ID.updateSet, { display_value: UPDATE_SET_NAME }),
    element('replace_on_upgrade', 'false'),
    element('sys_created_by', 'admin'),
    element('sys_created_on', STAMP),
    element('sys_id', updateId),
    element('sys_mod_count', '0'),
    element('sys_updated_by', 'admin'),
    element('sys_updated_on', STAMP),
    element('table', rec.associatedTable),
    element('target_name', rec.targetName),
    element('type', rec.type),
    element('update_domain', 'global'),
    element('update_guid', updateId),
    element('update_set', '', { display_value: '' }),
    element('view', ''),
  ];
  return `<sys_update_xml action="INSERT_OR_UPDATE">\n${lines.join('\n')}\n</sys_update_xml>`;
}

function remoteUpdateSet(count) {
  const lines = [
    element('application', 'global', GLOBAL),
    element('application_name', 'Global'),
    element('application_scope', 'global'),
    element('application_version', ''),
    element('collisions', ''),
    element('commit_date', ''),
    element('deleted', ''),
    element('description',
      'Optional push for the ilert-servicenow back-sync: a business rule on incident, ' +
      'the REST message it posts with, its Basic auth profile (password left empty: type ' +
      'the servicenow_token) and the integration user property. See servicenow/README.md.'),
    element('inserted', ''),
    element('name', UPDATE_SET_NAME),
    element('origin_sys_id', ''),
    element('parent', '', { display_value: '' }),
    element('release_date', ''),
    element('remote_base_update_set', '', { display_value: '' }),
    element('remote_parent_id', ''),
    element('remote_sys_id', ID.updateSet),
    element('state', 'loaded'),
    element('summary', ''),
    element('sys_class_name', 'sys_remote_update_set'),
    element('sys_created_by', 'admin'),
    element('sys_created_on', STAMP),
    element('sys_id', ID.updateSet),
    element('sys_mod_count', '0'),
    element('sys_updated_by', 'admin'),
    element('sys_updated_on', STAMP),
    element('update_set', '', { display_value: '' }),
    element('update_source', '', { display_value: '' }),
    element('updated', ''),
    element('updates', String(count)),
  ];
  return `<sys_remote_update_set action="INSERT_OR_UPDATE">\n${lines.join('\n')}\n</sys_remote_update_set>`;
}

function generate(sources) {
  const recs = records(sources || readSources());
  return '<?xml version="1.0" encoding="UTF-8"?>' +
    `<unload unload_date="${STAMP}">\n` +
    remoteUpdateSet(recs.length) + '\n' +
    recs.map(updateXmlOf).join('\n') + '\n' +
    '</unload>\n';
}

function main(argv) {
  let check = false;
  let xmlPath = XML_PATH;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') check = true;
    else if (argv[i] === '--xml' && i + 1 < argv.length) xmlPath = path.resolve(argv[++i]);
    else {
      process.stderr.write(`usage: build-update-set.js [--check] [--xml <path>]\n`);
      return 2;
    }
  }
  const wanted = generate();
  if (check) {
    let actual = null;
    try {
      actual = fs.readFileSync(xmlPath, 'utf8');
    } catch (e) {
      process.stderr.write(`${xmlPath} cannot be read (${e.code || e.message}); ` +
        'run: node servicenow/build-update-set.js\n');
      return 1;
    }
    if (actual !== wanted) {
      process.stderr.write(`${xmlPath} differs from what servicenow/build-update-set.js ` +
        'generates from the condition and script files; run: node servicenow/build-update-set.js\n');
      return 1;
    }
    return 0;
  }
  fs.writeFileSync(xmlPath, wanted);
  process.stdout.write(`wrote ${path.relative(process.cwd(), xmlPath) || xmlPath}\n`);
  return 0;
}

module.exports = { generate, escapeXml, ID, PLACEHOLDER_ENDPOINT, XML_PATH, CONDITION_PATH, SCRIPT_PATH };

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
