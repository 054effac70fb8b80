//! `cargo run -p ilert-servicenow-simulator [PORT]`: a local ServiceNow instance on
//! 127.0.0.1:PORT (default 8089), for trying the function with `cargo lambda watch`.

use simulator::ServiceNowSimulator;

const USER: &str = "ilert.integration";
const PASSWORD: &str = "simulator-password";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 8089,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: ilert-servicenow-simulator [PORT]  (PORT must be a number)");
            std::process::exit(2);
        }
    };
    let simulator =
        ServiceNowSimulator::start_at(([127, 0, 0, 1], port).into(), USER, PASSWORD).await?;
    println!(
        "ServiceNow simulator at {} (user {USER}, password {PASSWORD}); Ctrl-C stops it.",
        simulator.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
