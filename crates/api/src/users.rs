//! User administration, shared by the `standby users` commands and the demo loader. Works on the
//! store directly: it is for whoever runs Standby, not for API clients.

use standby_model::{Role, WireEnum};
use standby_store::{AuthStore, UserRecord};
use uuid::Uuid;

use crate::error::ApiError;
use crate::secrets::{generate_password, hash_password};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

impl From<ApiError> for AdminError {
    fn from(error: ApiError) -> Self {
        AdminError::Failed(error.error.message)
    }
}

impl From<standby_store::StoreError> for AdminError {
    fn from(error: standby_store::StoreError) -> Self {
        match error {
            standby_store::StoreError::Conflict(message) => AdminError::Invalid(message),
            other => AdminError::Failed(other.to_string()),
        }
    }
}

pub const MIN_PASSWORD_CHARS: usize = 10;

/// A role by its VSPC name, in any case.
pub fn parse_role(text: &str) -> Result<Role, AdminError> {
    Role::ALL
        .iter()
        .copied()
        .find(|r| r.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "unknown role '{text}'; roles: {}",
                Role::literals().join(", ")
            ))
        })
}

fn check_name(name: &str) -> Result<(), AdminError> {
    let valid = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "'{name}' is not a user name: use 1 to 128 letters, digits, '-', '_', '.', '@'"
        )))
    }
}

fn check_password(password: &str) -> Result<(), AdminError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=128).contains(&chars) {
        return Err(AdminError::Invalid(format!(
            "a password has {MIN_PASSWORD_CHARS} to 128 characters"
        )));
    }
    Ok(())
}

/// Adds a user to an organization (by name or UID). Without a password one is generated;
/// it is returned so the caller can show it once.
pub async fn add_user(
    store: &dyn AuthStore,
    name: &str,
    organization: &str,
    role: Role,
    password: Option<String>,
) -> Result<(UserRecord, Option<String>), AdminError> {
    check_name(name)?;
    let organizations = store.list_organizations().await?;
    let found = organizations
        .iter()
        .find(|o| {
            o.name == organization || Uuid::parse_str(organization).is_ok_and(|uid| uid == o.uid)
        })
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "no organization named '{organization}' (see `standby orgs list`)"
            ))
        })?;
    let (password, generated) = match password {
        Some(password) => {
            check_password(&password)?;
            (password, None)
        }
        None => {
            let password = generate_password()?;
            (password.clone(), Some(password))
        }
    };
    let user = UserRecord {
        uid: Uuid::now_v7(),
        name: name.to_owned(),
        organization_uid: found.uid,
        role,
        password_hash: hash_password(password).await?,
        disabled: false,
    };
    store.create_user(&user).await?;
    Ok((user, generated))
}

/// Sets a new password (revoking the user's tokens); generates one when none is given.
pub async fn change_password(
    store: &dyn AuthStore,
    name: &str,
    password: Option<String>,
) -> Result<Option<String>, AdminError> {
    let (password, generated) = match password {
        Some(password) => {
            check_password(&password)?;
            (password, None)
        }
        None => {
            let password = generate_password()?;
            (password.clone(), Some(password))
        }
    };
    if !store
        .set_password(name, &hash_password(password).await?)
        .await?
    {
        return Err(AdminError::Invalid(format!("no user named '{name}'")));
    }
    Ok(generated)
}

/// The demo's users: several roles in several organizations of the demo fleet.
pub const DEMO_USERS: [(&str, &str, Role); 7] = [
    (
        "noc-operator",
        standby_fleet::demo::PROVIDER,
        Role::PortalOperator,
    ),
    (
        "noc-readonly",
        standby_fleet::demo::PROVIDER,
        Role::ReadOnlyUser,
    ),
    ("contoso-owner", "Contoso Ltd", Role::CompanyOwner),
    ("contoso-viewer", "Contoso Ltd", Role::LocationUser),
    (
        "contoso-billing",
        "Contoso Ltd",
        Role::CompanyInvoiceAuditor,
    ),
    ("fabrikam-admin", "Fabrikam Inc", Role::CompanyAdministrator),
    ("tailspin-tenant", "Tailspin Toys", Role::CompanyTenant),
];

/// Creates the demo users that do not exist yet, all with `password` or each with a generated
/// one; returns (name, role, organization, generated password) for those created.
pub async fn add_demo_users(
    store: &dyn AuthStore,
    password: Option<String>,
) -> Result<Vec<(String, Role, String, Option<String>)>, AdminError> {
    let organizations = store.list_organizations().await?;
    let mut created = Vec::new();
    for (name, organization, role) in DEMO_USERS {
        // A store that holds another fleet has no demo organizations: nothing to add there.
        let exists = organizations.iter().any(|o| o.name == organization);
        if !exists || store.find_user_by_name(name).await?.is_some() {
            continue;
        }
        match add_user(store, name, organization, role, password.clone()).await {
            Ok((_, generated)) => {
                created.push((name.to_owned(), role, organization.to_owned(), generated));
            }
            // Another node starting on the same database created it a moment earlier.
            Err(_) if store.find_user_by_name(name).await?.is_some() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(created)
}
