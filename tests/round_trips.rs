//! What each kind of event costs the instance in requests, in sequence: at a real instance's
//! 100–400 ms a request, they set the wait iLert sees and the Lambda bill. A stateless
//! function must look the incident up and then write it: two requests for an update, one for
//! an event that changes nothing, three for a create in direct delivery (it reads back once to
//! find a racing twin).

mod support;

use support::*;

/// Every request the function made to the instance (incidents and users), as `METHOD table`.
fn requests(app: &TestApp) -> Vec<String> {
    app.servicenow
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/now/table/"))
        .map(|r| {
            let table = r.path.trim_start_matches("/api/now/table/");
            let table = table.split('/').next().unwrap_or_default();
            format!("{} {table}", r.method)
        })
        .collect()
}

/// Delivers `name` and returns the requests it cost.
async fn cost(app: &TestApp, name: &str) -> Vec<String> {
    app.servicenow.clear_requests();
    let answer = app.deliver(name).await;
    assert!(answer.status < 300, "{name}: {}", answer.text);
    requests(app)
}

#[tokio::test]
async fn each_kind_of_event_costs_the_fewest_requests_a_stateless_function_can_make() {
    for round in 0..3 {
        let app = TestApp::spawn().await;
        // The function instance's first create also looks up the integration user (the
        // caller), beside the incident's lookup rather than after it.
        let mut first = cost(&app, "01-alert-created").await;
        first.sort();
        assert_eq!(
            first,
            [
                "GET incident",
                "GET incident",
                "GET sys_user",
                "POST incident"
            ],
            "first create (round {round}): look up (and the caller beside it), insert, read back"
        );
        app.servicenow.clear_requests();
        let other = app
            .send(with_body(event("01-alert-created"), {
                let mut body = body_of("01-alert-created");
                body["id"] = serde_json::json!("12797431");
                body.to_string()
            }))
            .await;
        assert_eq!(other.body["action"], "created", "{}", other.text);
        assert_eq!(
            requests(&app),
            ["GET incident", "POST incident", "GET incident"],
            "create (round {round}): look up, insert, read back for a racing twin"
        );
        for name in [
            "02-alert-acknowledged",
            "03-alert-comment-added",
            "04-alert-resolved",
        ] {
            assert_eq!(
                cost(&app, name).await,
                ["GET incident", "PATCH incident"],
                "{name} (round {round}): look up, write"
            );
        }
        for name in [
            "01-alert-created",
            "03-alert-comment-added",
            "04-alert-resolved",
        ] {
            assert_eq!(
                cost(&app, name).await,
                ["GET incident"],
                "{name} redelivered (round {round}): look up, nothing to write"
            );
        }
    }
}
