//! The order state machine, with the status names of the TikTok Shop Partner API so the
//! compatible API can expose them unchanged.

use crate::DomainError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Unpaid,
    OnHold,
    AwaitingShipment,
    PartiallyShipping,
    AwaitingCollection,
    InTransit,
    Delivered,
    Completed,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 9] = [
        Self::Unpaid,
        Self::OnHold,
        Self::AwaitingShipment,
        Self::PartiallyShipping,
        Self::AwaitingCollection,
        Self::InTransit,
        Self::Delivered,
        Self::Completed,
        Self::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unpaid => "UNPAID",
            Self::OnHold => "ON_HOLD",
            Self::AwaitingShipment => "AWAITING_SHIPMENT",
            Self::PartiallyShipping => "PARTIALLY_SHIPPING",
            Self::AwaitingCollection => "AWAITING_COLLECTION",
            Self::InTransit => "IN_TRANSIT",
            Self::Delivered => "DELIVERED",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| DomainError::invalid("status", format!("unknown order status {s:?}")))
    }

    /// Human wording for pages.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unpaid => "Awaiting payment",
            Self::OnHold => "On hold",
            Self::AwaitingShipment => "To ship",
            Self::PartiallyShipping => "Partially shipped",
            Self::AwaitingCollection => "Awaiting collection",
            Self::InTransit => "Shipped",
            Self::Delivered => "Delivered",
            Self::Completed => "Completed",
            Self::Cancelled => "Cancelled",
        }
    }
}

/// The seller hands the parcel to a carrier.
pub fn ship(current: OrderStatus) -> Result<OrderStatus, DomainError> {
    match current {
        OrderStatus::AwaitingShipment
        | OrderStatus::PartiallyShipping
        | OrderStatus::AwaitingCollection => Ok(OrderStatus::InTransit),
        OrderStatus::Unpaid | OrderStatus::OnHold => Err(DomainError::Conflict(
            "the order is not paid and released for shipping yet".into(),
        )),
        other => Err(DomainError::Conflict(format!(
            "an order that is {} cannot be shipped",
            other.label().to_lowercase()
        ))),
    }
}

/// The buyer confirms receipt, which completes the order.
pub fn confirm_receipt(current: OrderStatus) -> Result<OrderStatus, DomainError> {
    match current {
        OrderStatus::InTransit | OrderStatus::Delivered => Ok(OrderStatus::Completed),
        other => Err(DomainError::Conflict(format!(
            "an order that is {} cannot be confirmed as received",
            other.label().to_lowercase()
        ))),
    }
}

/// Carrier names and tracking numbers as sellers type them; bounded and printable.
pub fn parse_tracking(carrier: &str, tracking: &str) -> Result<(String, String), DomainError> {
    let mut e = crate::error::Errors::new();
    let carrier = carrier.trim();
    let tracking: String = tracking.trim().to_ascii_uppercase();
    if carrier.is_empty() || carrier.chars().count() > 50 || carrier.chars().any(char::is_control) {
        e.add(
            "carrier",
            "enter the carrier's name (at most 50 characters)",
        );
    }
    if !(4..=40).contains(&tracking.len())
        || !tracking
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        e.add(
            "tracking_number",
            "a tracking number is 4 to 40 letters, digits or dashes",
        );
    }
    e.finish()?;
    Ok((carrier.to_string(), tracking))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path() {
        let s = ship(OrderStatus::AwaitingShipment).expect("ships");
        assert_eq!(s, OrderStatus::InTransit);
        assert_eq!(confirm_receipt(s), Ok(OrderStatus::Completed));
    }

    #[test]
    fn no_step_out_of_order() {
        assert!(ship(OrderStatus::Unpaid).is_err());
        assert!(ship(OrderStatus::InTransit).is_err());
        assert!(ship(OrderStatus::Cancelled).is_err());
        assert!(confirm_receipt(OrderStatus::AwaitingShipment).is_err());
        assert!(confirm_receipt(OrderStatus::Completed).is_err());
    }

    #[test]
    fn status_names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Ok(s));
        }
    }

    #[test]
    fn tracking_is_checked() {
        assert_eq!(
            parse_tracking(" DHL ", "ab-1234").expect("ok"),
            ("DHL".into(), "AB-1234".into())
        );
        assert!(parse_tracking("", "x").is_err());
    }
}
