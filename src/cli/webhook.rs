//! `wxauth webhook add|list|remove|deliveries`: the endpoints signed webhooks are posted to, and
//! how their deliveries went. Every command goes through [`crate::admin::webhooks`], like the
//! admin API, and is audited with the actor `cli:USER`.

use clap::{Args, Subcommand};

use crate::admin::webhooks::{DeliveryStatus, NewWebhook};
use crate::admin::{Actor, Admin, AdminError};

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Register an endpoint; prints its signing secret once.
    Add(AddWebhookArgs),
    /// List endpoints with their pending and dead deliveries (never a secret).
    List,
    /// Remove an endpoint and the deliveries still waiting for it.
    Remove { id: i64 },
    /// Show deliveries, newest first, as JSON.
    Deliveries {
        /// pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

#[derive(Args, Debug)]
pub struct AddWebhookArgs {
    /// Where events are posted (https://…).
    #[arg(long)]
    url: String,
    /// Comma-separated event types (user.created, user.signed_in, user.merged, user.disabled,
    /// user.deleted, follower.subscribed, follower.unsubscribed), or * for all.
    #[arg(long, value_delimiter = ',', required = true)]
    events: Vec<String>,
    /// A note for people.
    #[arg(long)]
    description: Option<String>,
}

fn failed(e: AdminError) -> String {
    match e {
        AdminError::Invalid { field, reason } => format!("--{field}: {reason}"),
        e => e.to_string(),
    }
}

/// Run one command; `Err` is the line to print (exit status 1).
pub async fn run(admin: &Admin, actor: &Actor, command: WebhookCommand) -> Result<(), String> {
    match command {
        WebhookCommand::Add(args) => {
            let created = admin
                .create_webhook(
                    actor,
                    NewWebhook {
                        url: args.url,
                        events: args.events,
                        description: args.description,
                    },
                )
                .await
                .map_err(failed)?;
            println!("id:     {}", created.webhook.id);
            println!("url:    {}", created.webhook.url);
            println!("events: {}", created.webhook.events.join(","));
            println!("secret: {}", created.secret);
            println!("(store the secret now: it is not shown again)");
        }
        WebhookCommand::List => {
            for w in admin.list_webhooks().await.map_err(failed)? {
                println!(
                    "{}\t{}\t{}\tpending={}\tdead={}",
                    w.id,
                    w.url,
                    w.events.join(","),
                    w.pending,
                    w.dead
                );
            }
        }
        WebhookCommand::Remove { id } => {
            admin.remove_webhook(actor, id).await.map_err(failed)?;
            println!("webhook {id} removed");
        }
        WebhookCommand::Deliveries { status, limit } => {
            let status = match status.as_deref() {
                None => None,
                Some(text) => Some(
                    DeliveryStatus::parse(text)
                        .ok_or("--status: expected pending, delivered or dead")?,
                ),
            };
            let deliveries = admin
                .webhook_deliveries(status, limit)
                .await
                .map_err(failed)?;
            let text = serde_json::to_string_pretty(&deliveries)
                .map_err(|e| format!("writing JSON: {e}"))?;
            println!("{text}");
        }
    }
    Ok(())
}
