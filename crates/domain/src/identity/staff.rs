//! Who may do what inside a shop: the owner, and staff whose role grants each area of the
//! seller center "view" or "edit". Some areas belong to the owner alone whatever the role says
//! (the bank account, staff, app authorisations, closing the shop), so a staff "admin" can run
//! the shop day to day but cannot redirect its money or lock the owner out.

use crate::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An area of the seller center a staff role can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Products, stock, prices, media, bulk tools.
    Catalogue,
    /// Orders, packages, shipping, cancellations.
    Fulfilment,
    /// Buyer messages, returns and refunds requests.
    CustomerService,
    /// Statements, payouts (not the bank account: owner only).
    Finance,
    /// Reports.
    Analytics,
    /// Promotions, coupons, videos.
    Marketing,
    /// Profile, warehouses, shipping templates, holiday mode.
    ShopSettings,
}

impl Area {
    pub const ALL: [Area; 7] = [
        Area::Catalogue,
        Area::Fulfilment,
        Area::CustomerService,
        Area::Finance,
        Area::Analytics,
        Area::Marketing,
        Area::ShopSettings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Catalogue => "catalogue",
            Area::Fulfilment => "fulfilment",
            Area::CustomerService => "customer_service",
            Area::Finance => "finance",
            Area::Analytics => "analytics",
            Area::Marketing => "marketing",
            Area::ShopSettings => "shop_settings",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Area::Catalogue => "Catalogue",
            Area::Fulfilment => "Orders and fulfilment",
            Area::CustomerService => "Customer service",
            Area::Finance => "Finance",
            Area::Analytics => "Analytics",
            Area::Marketing => "Marketing",
            Area::ShopSettings => "Shop settings",
        }
    }

    pub fn parse(s: &str) -> Option<Area> {
        Area::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Areas no role can grant: only the shop's owner acts on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerOnly {
    BankAccount,
    Staff,
    AppAuthorisations,
    CloseShop,
    /// Applying for the shop and changing its legal details.
    Application,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    #[default]
    None,
    View,
    Edit,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::None => "none",
            Access::View => "view",
            Access::Edit => "edit",
        }
    }

    pub fn parse(s: &str) -> Option<Access> {
        match s {
            "none" => Some(Access::None),
            "view" => Some(Access::View),
            "edit" => Some(Access::Edit),
            _ => None,
        }
    }

    /// Edit includes view.
    pub fn includes(self, needed: Access) -> bool {
        self >= needed
    }
}

/// What a role grants: an access level per area; an area not listed is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions(BTreeMap<Area, Access>);

impl Permissions {
    pub fn new(grants: impl IntoIterator<Item = (Area, Access)>) -> Self {
        Self(
            grants
                .into_iter()
                .filter(|(_, a)| *a != Access::None)
                .collect(),
        )
    }

    pub fn get(&self, area: Area) -> Access {
        self.0.get(&area).copied().unwrap_or_default()
    }

    /// Every area with its level, in `Area::ALL` order (for forms and API answers).
    pub fn all(&self) -> impl Iterator<Item = (Area, Access)> + '_ {
        Area::ALL.into_iter().map(|a| (a, self.get(a)))
    }

    /// `area:level` pairs separated by commas, the stored form (only granted areas).
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(a, l)| format!("{}:{}", a.as_str(), l.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The stored form back; an unknown area or level is an error, never a silent grant.
    pub fn decode(s: &str) -> Result<Self, DomainError> {
        let mut grants = Vec::new();
        for pair in s.split(',').filter(|p| !p.is_empty()) {
            let parsed = pair
                .split_once(':')
                .and_then(|(a, l)| Some((Area::parse(a)?, Access::parse(l)?)));
            match parsed {
                Some(g) => grants.push(g),
                None => {
                    return Err(DomainError::invalid(
                        "permissions",
                        format!("unknown area or access level: {pair}"),
                    ));
                }
            }
        }
        Ok(Self::new(grants))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The roles every shop has without creating them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetRole {
    Admin,
    Catalogue,
    Fulfilment,
    CustomerService,
    Finance,
    Analyst,
}

impl PresetRole {
    pub const ALL: [PresetRole; 6] = [
        PresetRole::Admin,
        PresetRole::Catalogue,
        PresetRole::Fulfilment,
        PresetRole::CustomerService,
        PresetRole::Finance,
        PresetRole::Analyst,
    ];

    /// The stored role key of a preset (custom roles are stored by their `rol_` id).
    pub fn key(self) -> &'static str {
        match self {
            PresetRole::Admin => "admin",
            PresetRole::Catalogue => "catalogue",
            PresetRole::Fulfilment => "fulfilment",
            PresetRole::CustomerService => "customer_service",
            PresetRole::Finance => "finance",
            PresetRole::Analyst => "analyst",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PresetRole::Admin => "Shop admin",
            PresetRole::Catalogue => "Catalogue manager",
            PresetRole::Fulfilment => "Fulfilment",
            PresetRole::CustomerService => "Customer service",
            PresetRole::Finance => "Finance",
            PresetRole::Analyst => "Analyst",
        }
    }

    pub fn parse(key: &str) -> Option<PresetRole> {
        PresetRole::ALL.into_iter().find(|r| r.key() == key)
    }

    pub fn permissions(self) -> Permissions {
        use Access::{Edit, View};
        use Area::*;
        match self {
            PresetRole::Admin => Permissions::new(Area::ALL.map(|a| (a, Edit))),
            PresetRole::Catalogue => {
                Permissions::new([(Catalogue, Edit), (Marketing, View), (Analytics, View)])
            }
            PresetRole::Fulfilment => Permissions::new([
                (Fulfilment, Edit),
                (Catalogue, View),
                (CustomerService, View),
            ]),
            PresetRole::CustomerService => Permissions::new([
                (CustomerService, Edit),
                (Fulfilment, View),
                (Catalogue, View),
            ]),
            PresetRole::Finance => {
                Permissions::new([(Finance, Edit), (Fulfilment, View), (Analytics, View)])
            }
            PresetRole::Analyst => Permissions::new(Area::ALL.map(|a| (a, View))),
        }
    }
}

/// A custom role's name: 1 to 40 characters, no control characters, not a preset's name.
pub fn check_role_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            "enter a role name of 1 to 40 characters",
        ));
    }
    if PresetRole::ALL
        .iter()
        .any(|r| r.name().eq_ignore_ascii_case(name) || r.key().eq_ignore_ascii_case(name))
    {
        return Err(DomainError::invalid(
            "name",
            "this name belongs to a preset role; choose another",
        ));
    }
    Ok(name.to_string())
}

/// A custom role must grant something, or its members could do nothing at all.
pub fn check_custom_permissions(p: &Permissions) -> Result<(), DomainError> {
    if p.is_empty() {
        return Err(DomainError::invalid(
            "permissions",
            "grant at least one area view or edit access",
        ));
    }
    Ok(())
}

/// How a signed-in seller stands in their shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopAccess {
    Owner,
    Staff {
        /// A preset key or a custom role id.
        role: String,
        permissions: Permissions,
    },
}

impl ShopAccess {
    pub fn is_owner(&self) -> bool {
        matches!(self, ShopAccess::Owner)
    }

    pub fn allows(&self, area: Area, needed: Access) -> bool {
        match self {
            ShopAccess::Owner => true,
            ShopAccess::Staff { permissions, .. } => permissions.get(area).includes(needed),
        }
    }

    /// Owner-only areas: the owner, nobody else, whatever a role grants.
    pub fn allows_owner_only(&self, _area: OwnerOnly) -> bool {
        self.is_owner()
    }
}

/// Invitations expire after 120 hours.
pub const INVITATION_LIFETIME_MS: i64 = 120 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn access() -> impl Strategy<Value = Access> {
        prop_oneof![Just(Access::None), Just(Access::View), Just(Access::Edit)]
    }

    proptest! {
        #[test]
        fn permissions_survive_their_stored_form(levels in proptest::collection::vec(access(), 7)) {
            let p = Permissions::new(Area::ALL.into_iter().zip(levels));
            prop_assert_eq!(Permissions::decode(&p.encode()).expect("decodes"), p);
        }

        #[test]
        fn staff_never_exceed_their_grant(levels in proptest::collection::vec(access(), 7)) {
            let p = Permissions::new(Area::ALL.into_iter().zip(levels.clone()));
            let staff = ShopAccess::Staff { role: "rol_x".into(), permissions: p };
            for (area, level) in Area::ALL.into_iter().zip(levels) {
                prop_assert_eq!(staff.allows(area, Access::Edit), level == Access::Edit);
                prop_assert_eq!(staff.allows(area, Access::View), level != Access::None);
            }
            prop_assert!(!staff.allows_owner_only(OwnerOnly::BankAccount));
        }
    }

    #[test]
    fn presets_grant_what_their_names_say() {
        let admin = PresetRole::Admin.permissions();
        assert!(Area::ALL.iter().all(|a| admin.get(*a) == Access::Edit));
        let analyst = PresetRole::Analyst.permissions();
        assert!(Area::ALL.iter().all(|a| analyst.get(*a) == Access::View));
        let fulfilment = PresetRole::Fulfilment.permissions();
        assert_eq!(fulfilment.get(Area::Fulfilment), Access::Edit);
        assert_eq!(fulfilment.get(Area::Finance), Access::None);
        assert_eq!(
            PresetRole::Catalogue.permissions().get(Area::Fulfilment),
            Access::None
        );
        for r in PresetRole::ALL {
            assert_eq!(PresetRole::parse(r.key()), Some(r));
        }
    }

    #[test]
    fn owner_only_areas_stay_with_the_owner() {
        let staff_admin = ShopAccess::Staff {
            role: "admin".into(),
            permissions: PresetRole::Admin.permissions(),
        };
        for area in [
            OwnerOnly::BankAccount,
            OwnerOnly::Staff,
            OwnerOnly::AppAuthorisations,
            OwnerOnly::CloseShop,
            OwnerOnly::Application,
        ] {
            assert!(!staff_admin.allows_owner_only(area));
            assert!(ShopAccess::Owner.allows_owner_only(area));
        }
    }

    #[test]
    fn stored_permissions_refuse_unknown_values() {
        assert!(Permissions::decode("catalogue:edit,orders:root").is_err());
        assert!(Permissions::decode("vault:edit").is_err());
        assert!(Permissions::decode("").expect("empty").is_empty());
    }

    #[test]
    fn custom_role_names_are_checked() {
        assert!(check_role_name("  Packers ").is_ok());
        assert!(check_role_name("").is_err());
        assert!(check_role_name("Analyst").is_err());
        assert!(check_role_name(&"x".repeat(41)).is_err());
        assert!(check_custom_permissions(&Permissions::default()).is_err());
    }
}
