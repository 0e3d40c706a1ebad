//! User roles, as VSPC names them (`x-veeam-vspc-admitted-roles`), and which of the failover
//! plan operations each may call (CONTRACT.md §10).

use serde::{Deserialize, Serialize};

use crate::enums::WireEnum;

macro_rules! roles {
    ($($role:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Role { $($role),+ }

        impl WireEnum for Role {
            const ALL: &'static [Self] = &[$(Self::$role),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$role => stringify!($role)),+ }
            }
        }
    };
}

roles!(
    PortalAdministrator,
    LocationAdministrator,
    LocationUser,
    CompanyOwner,
    CompanyInvoiceAuditor,
    Subtenant,
    PortalOperator,
    ServiceProviderGlobalAdministrator,
    ServiceProviderOperator,
    ServiceProviderUser,
    ServiceProviderInvoiceAuditor,
    ServiceProviderAdministrator,
    SiteAdministrator,
    CompanyAdministrator,
    ReadOnlyUser,
    CompanyTenant,
);

impl Role {
    /// May call the six GET operations (13 roles).
    pub fn can_read_plans(self) -> bool {
        !matches!(
            self,
            Role::CompanyInvoiceAuditor | Role::Subtenant | Role::ServiceProviderInvoiceAuditor
        )
    }

    /// May also PATCH, start and undo (10 roles).
    pub fn can_write_plans(self) -> bool {
        self.can_read_plans()
            && !matches!(
                self,
                Role::LocationUser | Role::ServiceProviderUser | Role::ReadOnlyUser
            )
    }

    /// A provider-side role: sees every organization's plans.
    pub fn is_provider_role(self) -> bool {
        matches!(
            self,
            Role::PortalAdministrator
                | Role::PortalOperator
                | Role::ReadOnlyUser
                | Role::SiteAdministrator
        )
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_sets_match_the_contract() {
        assert_eq!(Role::ALL.len(), 16);
        assert_eq!(Role::ALL.iter().filter(|r| r.can_read_plans()).count(), 13);
        assert_eq!(Role::ALL.iter().filter(|r| r.can_write_plans()).count(), 10);
    }
}
