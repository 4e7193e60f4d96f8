//! Turning a cart into orders: one payment, split into one order per shop.

use crate::DomainError;
use crate::money::{Currency, Money};

pub const MAX_LINES: usize = 50;
pub const MAX_QUANTITY: i64 = 99;

/// A cart line priced at checkout time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub shop_id: String,
    pub variant_id: String,
    pub quantity: i64,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopOrder {
    pub shop_id: String,
    pub lines: Vec<PricedLine>,
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub currency: Currency,
    pub orders: Vec<ShopOrder>,
    /// What the buyer is charged: exactly the sum of the orders.
    pub total: Money,
}

pub fn check_quantity(quantity: i64) -> Result<i64, DomainError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(DomainError::invalid(
            "quantity",
            format!("quantity must be between 1 and {MAX_QUANTITY}"),
        ))
    }
}

/// Groups lines by shop (in first-seen order) and totals them. All lines must share one
/// currency: one payment is one charge.
pub fn split_by_shop(lines: Vec<PricedLine>) -> Result<Split, DomainError> {
    let first = lines
        .first()
        .ok_or_else(|| DomainError::invalid("cart", "the cart is empty"))?;
    if lines.len() > MAX_LINES {
        return Err(DomainError::invalid(
            "cart",
            format!("at most {MAX_LINES} lines per checkout"),
        ));
    }
    let currency = first.unit_price.currency;
    let mut orders: Vec<ShopOrder> = Vec::new();
    let mut total = Money::zero(currency);
    for line in lines {
        check_quantity(line.quantity)?;
        if line.unit_price.currency != currency {
            return Err(DomainError::invalid(
                "cart",
                "all items in one checkout must share a currency",
            ));
        }
        let amount = line.unit_price.checked_mul(line.quantity)?;
        total = total.checked_add(amount)?;
        match orders.iter_mut().find(|o| o.shop_id == line.shop_id) {
            Some(order) => {
                order.total = order.total.checked_add(amount)?;
                order.lines.push(line);
            }
            None => orders.push(ShopOrder {
                shop_id: line.shop_id.clone(),
                total: amount,
                lines: vec![line],
            }),
        }
    }
    Ok(Split {
        currency,
        orders,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(shop: &str, qty: i64, price: i64) -> PricedLine {
        PricedLine {
            shop_id: shop.into(),
            variant_id: format!("var_{shop}_{price}"),
            quantity: qty,
            unit_price: Money::new(price, Currency::parse("EUR").expect("EUR")).expect("price"),
        }
    }

    #[test]
    fn splits_per_shop() {
        let s = split_by_shop(vec![
            line("a", 2, 500),
            line("b", 1, 1000),
            line("a", 1, 250),
        ])
        .expect("ok");
        assert_eq!(s.orders.len(), 2);
        assert_eq!(s.orders[0].total.minor, 1250);
        assert_eq!(s.orders[1].total.minor, 1000);
        assert_eq!(s.total.minor, 2250);
    }

    #[test]
    fn refuses_empty_carts_and_bad_quantities() {
        assert!(split_by_shop(vec![]).is_err());
        assert!(split_by_shop(vec![line("a", 0, 1)]).is_err());
        assert!(split_by_shop(vec![line("a", 100, 1)]).is_err());
    }

    proptest! {
        #[test]
        fn orders_sum_to_the_charge(lines in prop::collection::vec((0u8..5, 1i64..=99, 1i64..10_000_000), 1..40)) {
            let lines: Vec<_> = lines.into_iter().map(|(s, q, p)| line(&format!("s{s}"), q, p)).collect();
            let expected: i64 = lines.iter().map(|l| l.quantity * l.unit_price.minor).sum();
            let split = split_by_shop(lines).expect("valid");
            let sum: i64 = split.orders.iter().map(|o| o.total.minor).sum();
            prop_assert_eq!(sum, split.total.minor);
            prop_assert_eq!(split.total.minor, expected);
        }
    }
}
