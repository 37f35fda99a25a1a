//! `wxauth resource add|list|show|update|remove`: the resources (RFC 8707) tokens may be issued
//! for. Every command goes through [`crate::admin::resources`], like the admin API, and is
//! audited with the actor `cli:USER`.

use clap::{Args, Subcommand};

use crate::admin::{Actor, Admin, AdminError};
use crate::oauth::resources::{NewResource, Resource, ResourceChanges};

#[derive(Subcommand, Debug)]
pub enum ResourceCommand {
    /// Register a resource (an API): its identifier becomes the `aud` of tokens for it.
    Add(AddResourceArgs),
    /// List resources (identifier, scopes, name).
    List,
    /// Show one resource.
    Show { id: String },
    /// Change a resource's name or scopes (only the options given).
    Update(UpdateResourceArgs),
    /// Remove a resource (refused while a client is still allowed it).
    Remove { id: String },
}

#[derive(Args, Debug)]
pub struct AddResourceArgs {
    /// The resource indicator: an absolute URI without a fragment, e.g. https://api.example.com.
    #[arg(long)]
    id: String,
    /// Comma-separated scopes the resource accepts.
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    /// A name for people.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateResourceArgs {
    id: String,
    /// Comma-separated; replaces the scopes.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, conflicts_with = "name")]
    clear_name: bool,
}

/// The one line a refusal prints, naming the option that carried the refused value.
fn failed(e: AdminError) -> String {
    match e {
        AdminError::Invalid { field, reason } => {
            let option = match field {
                "identifier" => "id",
                "display_name" => "name",
                other => other,
            };
            format!("--{option}: {reason}")
        }
        e => e.to_string(),
    }
}

fn print(r: &Resource) {
    println!("id:     {}", r.identifier);
    println!("name:   {}", r.display_name.as_deref().unwrap_or("-"));
    println!("scopes: {}", r.scopes.join(","));
}

/// Run one command; `Err` is the line to print (exit status 1).
pub async fn run(admin: &Admin, actor: &Actor, command: ResourceCommand) -> Result<(), String> {
    match command {
        ResourceCommand::Add(args) => {
            let new = NewResource {
                identifier: args.id,
                display_name: args.name,
                scopes: args.scopes,
            };
            print(&admin.create_resource(actor, new).await.map_err(failed)?);
        }
        ResourceCommand::List => {
            for r in admin.resources().await.map_err(failed)? {
                println!(
                    "{}\t{}\t{}",
                    r.identifier,
                    r.scopes.join(","),
                    r.display_name.as_deref().unwrap_or("-")
                );
            }
        }
        ResourceCommand::Show { id } => print(&admin.resource(&id).await.map_err(failed)?),
        ResourceCommand::Update(args) => {
            let display_name = if args.clear_name {
                Some(None)
            } else {
                args.name.map(Some)
            };
            let changes = ResourceChanges {
                display_name,
                scopes: args.scopes,
            };
            let resource = admin
                .update_resource(actor, &args.id, changes)
                .await
                .map_err(failed)?;
            print(&resource);
        }
        ResourceCommand::Remove { id } => {
            admin.delete_resource(actor, &id).await.map_err(failed)?;
            println!("resource {id} removed");
        }
    }
    Ok(())
}
