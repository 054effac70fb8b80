//! The ServiceNow instance over real HTTP with Basic auth: who changed a record and when,
//! service-desk edits, single-record reads, and the encoded query language a back-sync pass
//! sends, with the trap that a term the instance cannot use widens the query.

use serde_json::{json, Value};
use simulator::{Fault, ServiceNowSimulator};

const USER: &str = "ilert.integration";
const PASSWORD: &str = "integration-password";

struct Instance {
    servicenow: ServiceNowSimulator,
    client: reqwest::Client,
}

impl Instance {
    async fn start() -> Self {
        // The workspace's reqwest brings no crypto provider of its own (the function chooses ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            servicenow: ServiceNowSimulator::start(USER, PASSWORD).await.unwrap(),
            client: reqwest::Client::new(),
        }
    }

    /// Sends a Table API request; answers the status and the body as JSON.
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.servicenow.url()))
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap(),
        )
    }

    async fn create(&self, fields: Value) -> Value {
        let (status, body) = self
            .send("POST", "/api/now/table/incident", Some(fields))
            .await;
        assert_eq!(status, 201, "{body}");
        body["result"].clone()
    }

    async fn patch(&self, sys_id: &str, fields: Value) -> (u16, Value) {
        let path = format!("/api/now/table/incident/{sys_id}");
        self.send("PATCH", &path, Some(fields)).await
    }

    /// The numbers of the incidents an encoded query returns, in its order.
    async fn numbers(&self, query: &str) -> Vec<String> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sysparm_query", query)
            .append_pair("sysparm_fields", "number")
            .finish();
        let (status, body) = self
            .send("GET", &format!("/api/now/table/incident?{query}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["number"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Whether `text` is a date-time as ServiceNow stores one: `YYYY-MM-DD HH:MM:SS`.
fn is_glide_date_time(text: &str) -> bool {
    text.len() == 19
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

#[tokio::test]
async fn every_saved_write_records_who_made_it_when_and_how_many_there_were() {
    let instance = Instance::start().await;
    let created = instance
        .create(json!({ "short_description": "disk full", "correlation_id": "ilert:1" }))
        .await;
    assert_eq!(created["sys_created_by"], USER);
    assert_eq!(created["sys_updated_by"], USER);
    assert_eq!(created["sys_mod_count"], "0", "an insert is not an update");
    let created_on = created["sys_created_on"].as_str().unwrap();
    assert!(is_glide_date_time(created_on), "{created_on}");
    assert_eq!(created["sys_updated_on"], created_on);
    let number = created["number"].as_str().unwrap();
    assert_eq!(
        instance
            .numbers("sys_created_onRELATIVEGT@minute@ago@1")
            .await,
        [number],
        "created now, in UTC"
    );

    let sys_id = created["sys_id"].as_str().unwrap();
    let (status, updated) = instance.patch(sys_id, json!({ "state": "2" })).await;
    assert_eq!(status, 200);
    assert_eq!(updated["result"]["sys_mod_count"], "1");
    assert_eq!(updated["result"]["sys_updated_by"], USER);

    // An instance does not save a write that changes nothing...
    let (_, unchanged) = instance.patch(sys_id, json!({ "state": "2" })).await;
    assert_eq!(unchanged["result"]["sys_mod_count"], "1");
    // ...but a journal entry is a change.
    let (_, noted) = instance
        .patch(sys_id, json!({ "work_notes": "looking" }))
        .await;
    assert_eq!(noted["result"]["sys_mod_count"], "2");

    // System fields are the instance's own: a write cannot set them.
    let (_, forged) = instance
        .patch(
            sys_id,
            json!({
                "sys_updated_by": "someone.else",
                "sys_mod_count": "40",
                "sys_updated_on": "2020-01-01 00:00:00",
            }),
        )
        .await;
    assert_eq!(forged["result"]["sys_updated_by"], USER);
    assert_eq!(forged["result"]["sys_mod_count"], "2");
    assert_ne!(forged["result"]["sys_updated_on"], "2020-01-01 00:00:00");
}

#[tokio::test]
async fn a_write_with_an_oauth_token_is_the_integration_users() {
    let instance = Instance::start().await;
    instance.servicenow.enable_oauth("client", "secret");
    let token = json_of(
        instance
            .client
            .post(format!("{}/oauth_token.do", instance.servicenow.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&client_id=client&client_secret=secret")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let answer = json_of(
        instance
            .client
            .post(format!(
                "{}/api/now/table/incident",
                instance.servicenow.url()
            ))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .body(json!({ "short_description": "via OAuth" }).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["result"]["sys_created_by"], USER);
    assert_eq!(answer["result"]["sys_updated_by"], USER);
}

/// The body as JSON: reqwest's `json` is a feature the simulator does not enable.
async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_service_desk_edit_is_applied_like_a_write_and_recorded_as_the_agents() {
    let instance = Instance::start().await;
    let created = instance
        .create(json!({ "short_description": "disk full" }))
        .await;
    let number = created["number"].as_str().unwrap();
    let servicenow = &instance.servicenow;

    servicenow
        .desk_edit(
            number,
            "jsmith",
            &[("state", "2"), ("work_notes", "taking this one")],
        )
        .unwrap();
    let edited = servicenow.incident_by_number(number).unwrap();
    assert_eq!(edited["state"], "2");
    assert_eq!(edited["sys_updated_by"], "jsmith");
    assert_eq!(edited["sys_created_by"], USER);
    assert_eq!(edited["sys_mod_count"], "1");
    assert!(is_glide_date_time(
        edited["sys_updated_on"].as_str().unwrap()
    ));
    assert_eq!(edited["work_notes"], "", "a journal field reads back empty");
    let journal = servicenow.journal(number);
    assert_eq!(journal.len(), 1);
    assert_eq!(
        (journal[0].field.as_str(), journal[0].text.as_str()),
        ("work_notes", "taking this one")
    );

    let refused = servicenow.desk_edit(number, "jsmith", &[("state", "6")]);
    assert!(
        refused
            .as_ref()
            .is_err_and(|message| message.contains("Data Policy Exception")),
        "{refused:?}"
    );
    assert_eq!(servicenow.incident_by_number(number).unwrap()["state"], "2");

    servicenow
        .desk_edit(
            number,
            "jsmith",
            &[
                ("state", "7"),
                ("close_code", "Solution provided"),
                ("close_notes", "freed space"),
            ],
        )
        .unwrap();
    let closed = servicenow.desk_edit(number, "jsmith", &[("comments", "reopen?")]);
    assert!(closed.is_err_and(|message| message.contains("ACL Exception")));
    assert!(servicenow.desk_edit("INC9999999", "jsmith", &[]).is_err());
    assert!(servicenow
        .desk_edit(number, "jsmith", &[("stat", "2")])
        .is_err());
    assert!(servicenow
        .desk_edit(number, "jsmith", &[("priority", "1")])
        .is_err());

    // The Table API sees the agent's change.
    let sys_id = created["sys_id"].as_str().unwrap();
    let (_, read) = instance
        .send("GET", &format!("/api/now/table/incident/{sys_id}"), None)
        .await;
    assert_eq!(read["result"]["sys_updated_by"], "jsmith");
    assert_eq!(read["result"]["sys_mod_count"], "2");
}

#[tokio::test]
async fn one_record_reads_by_sys_id_and_a_missing_one_is_404() {
    let instance = Instance::start().await;
    let sys_user = instance
        .servicenow
        .add_user("jsmith", "j@example.com", "J Smith");
    let created = instance
        .create(json!({ "short_description": "disk full", "assigned_to": sys_user }))
        .await;
    let sys_id = created["sys_id"].as_str().unwrap();

    let (status, whole) = instance
        .send("GET", &format!("/api/now/table/incident/{sys_id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(whole["result"]["number"], created["number"]);
    assert_eq!(whole["result"]["assigned_to"]["value"], sys_user.as_str());

    let path = format!(
        "/api/now/table/incident/{sys_id}?sysparm_fields=number,assigned_to,sys_updated_by&sysparm_exclude_reference_link=true"
    );
    let (_, some) = instance.send("GET", &path, None).await;
    assert_eq!(
        some["result"],
        json!({ "number": created["number"], "assigned_to": sys_user, "sys_updated_by": USER })
    );

    let (status, missing) = instance
        .send("GET", "/api/now/table/incident/0123456789abcdef", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        missing,
        json!({
            "error": {
                "message": "No Record found",
                "detail": "Record doesn't exist or ACL restricts the record retrieval",
            },
            "status": "failure",
        })
    );
}

/// Four incidents to query: INC0010001 to INC0010004.
async fn four_incidents() -> Instance {
    let instance = Instance::start().await;
    for (description, correlation_id, impact) in [
        ("Disk FULL on db-1", "ilert:101", "1"),
        ("disk slow on db-2", "ilert:102", "2"),
        ("Printer jam", "", "3"),
        ("CPU hot on web-10", "ilert:110", "2"),
    ] {
        instance
            .create(json!({
                "short_description": description,
                "correlation_id": correlation_id,
                "impact": impact,
            }))
            .await;
    }
    instance
}

#[tokio::test]
async fn the_encoded_query_operators_select_as_a_real_instance_does() {
    let instance = four_incidents().await;
    let cases = [
        ("correlation_id=ilert:102", vec!["INC0010002"]),
        (
            "correlation_id!=ilert:102",
            vec!["INC0010001", "INC0010003", "INC0010004"],
        ),
        // Text operators ignore case.
        (
            "short_descriptionSTARTSWITHdisk",
            vec!["INC0010001", "INC0010002"],
        ),
        ("short_descriptionENDSWITHDB-2", vec!["INC0010002"]),
        ("short_descriptionLIKEfull", vec!["INC0010001"]),
        (
            "short_descriptionNOT LIKEdisk",
            vec!["INC0010003", "INC0010004"],
        ),
        (
            "correlation_idINilert:101,ilert:110",
            vec!["INC0010001", "INC0010004"],
        ),
        (
            "correlation_idNOT INilert:101,ilert:110",
            vec!["INC0010002", "INC0010003"],
        ),
        ("correlation_idISEMPTY", vec!["INC0010003"]),
        (
            "correlation_idISNOTEMPTY",
            vec!["INC0010001", "INC0010002", "INC0010004"],
        ),
        // Numbers compare as numbers, not as text.
        ("impact>1", vec!["INC0010002", "INC0010003", "INC0010004"]),
        ("impact>=2", vec!["INC0010002", "INC0010003", "INC0010004"]),
        ("impact<2", vec!["INC0010001"]),
        ("impact<=2", vec!["INC0010001", "INC0010002", "INC0010004"]),
        (
            "numberININC0010001,INC0010003",
            vec!["INC0010001", "INC0010003"],
        ),
        ("number>INC0010002", vec!["INC0010003", "INC0010004"]),
        // ^OR is an alternative to the term before it; ^ binds the groups.
        (
            "impact=1^ORimpact=3^short_descriptionLIKEdisk",
            vec!["INC0010001"],
        ),
        // ^NQ joins whole queries; ORDERBY orders the union.
        (
            "impact=3^NQcorrelation_id=ilert:110^ORDERBYDESCnumber",
            vec!["INC0010004", "INC0010003"],
        ),
        (
            "ORDERBYimpact^ORDERBYDESCnumber",
            vec!["INC0010001", "INC0010004", "INC0010002", "INC0010003"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(instance.numbers(query).await, expected, "{query}");
    }
    // Numbers order by value: 10 after 9.
    let servicenow = &instance.servicenow;
    for _ in 0..10 {
        servicenow
            .desk_edit("INC0010003", "jsmith", &[("work_notes", "again")])
            .unwrap();
    }
    for _ in 0..9 {
        servicenow
            .desk_edit("INC0010002", "jsmith", &[("work_notes", "again")])
            .unwrap();
    }
    assert_eq!(
        instance
            .numbers("sys_mod_count>0^ORDERBYDESCsys_mod_count")
            .await,
        ["INC0010003", "INC0010002"]
    );
}

#[tokio::test]
async fn date_times_compare_absolutely_and_relative_to_now() {
    let instance = four_incidents().await;
    let servicenow = &instance.servicenow;
    servicenow.set_updated_on("INC0010001", "2025-01-01 08:00:00");
    servicenow.set_updated_on("INC0010002", "2025-01-02 08:00:00");
    assert_eq!(
        servicenow.incident_by_number("INC0010001").unwrap()["sys_updated_on"],
        "2025-01-01 08:00:00"
    );
    assert_eq!(
        instance.numbers("sys_updated_on<2025-01-02 00:00:00").await,
        ["INC0010001"]
    );
    assert_eq!(
        instance
            .numbers("sys_updated_on>=2025-01-02 08:00:00^sys_updated_on<2025-06-01 00:00:00")
            .await,
        ["INC0010002"]
    );
    assert_eq!(
        instance
            .numbers("sys_updated_onRELATIVEGT@hour@ago@1")
            .await,
        ["INC0010003", "INC0010004"]
    );
    assert_eq!(
        instance.numbers("sys_updated_onRELATIVELT@day@ago@1").await,
        ["INC0010001", "INC0010002"]
    );
    let recent_or_old = instance
        .numbers("sys_updated_onRELATIVEGT@second@ago@30^ORsys_updated_onRELATIVELT@minute@ago@5^ORDERBYDESCsys_updated_on")
        .await;
    // The two written just now may straddle a second: their order is not the point here.
    let mut just_now = recent_or_old[..2].to_vec();
    just_now.sort();
    assert_eq!(just_now, ["INC0010003", "INC0010004"]);
    assert_eq!(recent_or_old[2..], ["INC0010002", "INC0010001"]);
}

#[tokio::test]
async fn a_term_the_instance_cannot_use_is_dropped_and_widens_its_part() {
    let instance = four_incidents().await;
    let every = ["INC0010001", "INC0010002", "INC0010003", "INC0010004"];
    instance.servicenow.hide_from_queries("category");
    instance.servicenow.deny_read("cmdb_ci");
    for query in [
        "correlation_ids=ilert:101",                // an unknown field
        "correlation_idCONTAINSilert:101",          // an unknown operator
        "correlation_idBETWEENilert:1@ilert:200",   // an operator the simulator does not model
        "correlation_id~ilert:101",                 // no operator at all
        "categorySTARTSWITHnet",                    // a field hidden from queries
        "cmdb_ciISEMPTY",                           // a field the user may not read
        "sys_updated_onRELATIVEGT@fortnight@ago@1", // an operand it cannot read
    ] {
        assert_eq!(instance.numbers(query).await, every, "{query}");
    }
    // Per ^NQ part: the dropped part matches everything, the whole query widens.
    assert_eq!(
        instance.numbers("correlation_id=ilert:101^NQbogus=1").await,
        every
    );
    // The other terms of the part still hold.
    assert_eq!(
        instance.numbers("bogus=1^impact=2").await,
        ["INC0010002", "INC0010004"]
    );
}

#[tokio::test]
async fn list_reads_page_with_an_offset_after_ordering() {
    let instance = four_incidents().await;
    let page = |offset: usize| {
        format!(
            "/api/now/table/incident?sysparm_query=ORDERBYDESCnumber&sysparm_fields=number&sysparm_limit=2&sysparm_offset={offset}"
        )
    };
    let numbers = |body: Value| -> Vec<String> {
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, first) = instance.send("GET", &page(0), None).await;
    let (_, second) = instance.send("GET", &page(2), None).await;
    let (_, past) = instance.send("GET", &page(4), None).await;
    assert_eq!(numbers(first), ["INC0010004", "INC0010003"]);
    assert_eq!(numbers(second), ["INC0010002", "INC0010001"]);
    assert!(numbers(past).is_empty());
}

#[tokio::test]
async fn injected_faults_not_yet_met_are_counted() {
    let instance = Instance::start().await;
    instance
        .servicenow
        .inject(Some("PATCH"), Fault::status(500, None));
    instance
        .servicenow
        .inject(Some("GET"), Fault::status(503, Some(2)));
    assert_eq!(instance.servicenow.faults_pending(), 2);
    let (status, _) = instance.send("GET", "/api/now/table/incident", None).await;
    assert_eq!(status, 503);
    assert_eq!(instance.servicenow.faults_pending(), 1);
    instance.servicenow.clear_faults();
    assert_eq!(instance.servicenow.faults_pending(), 0);
}
