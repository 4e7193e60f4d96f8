//! Double-entry bookkeeping. Every transaction is a set of postings that sums to zero per
//! currency; balances are sums of postings, never counters that can drift.
//! Sign convention: a positive amount debits the account, a negative one credits it.

use crate::DomainError;
use crate::money::Currency;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: String,
    pub amount: i64,
    pub currency: Currency,
}

/// A balanced transaction; only constructible when its postings sum to zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub kind: &'static str,
    pub reference: String,
    postings: Vec<Posting>,
}

impl Transaction {
    pub fn new(
        kind: &'static str,
        reference: impl Into<String>,
        postings: Vec<Posting>,
    ) -> Result<Self, DomainError> {
        if postings.len() < 2 {
            return Err(DomainError::Conflict(
                "a ledger transaction needs at least two postings".into(),
            ));
        }
        let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
        for p in &postings {
            if p.amount == 0 {
                return Err(DomainError::Conflict(
                    "a posting of zero is meaningless".into(),
                ));
            }
            *sums.entry(p.currency.code()).or_default() += i128::from(p.amount);
        }
        if sums.values().any(|s| *s != 0) {
            return Err(DomainError::Conflict(
                "ledger postings must sum to zero".into(),
            ));
        }
        Ok(Self {
            kind,
            reference: reference.into(),
            postings,
        })
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }
}

pub mod accounts {
    /// Money the payment processor owes us for paid checkouts.
    pub const PROCESSOR_CLEARING: &str = "platform:processor_clearing";

    /// What the platform owes a shop for orders not yet completed.
    pub fn shop_pending(shop_id: &str) -> String {
        format!("shop:{shop_id}:pending")
    }

    /// What a shop may be paid out.
    pub fn shop_available(shop_id: &str) -> String {
        format!("shop:{shop_id}:available")
    }
}

/// A paid checkout, recorded with its orders: the processor owes us the authorised total (captured
/// right after the orders commit), and each shop is owed its order.
pub fn checkout_paid(
    checkout_id: &str,
    currency: Currency,
    shop_totals: &[(String, i64)],
) -> Result<Transaction, DomainError> {
    let total: i64 = shop_totals.iter().map(|(_, t)| *t).sum();
    let mut postings = vec![Posting {
        account: accounts::PROCESSOR_CLEARING.into(),
        amount: total,
        currency,
    }];
    postings.extend(shop_totals.iter().map(|(shop, amount)| Posting {
        account: accounts::shop_pending(shop),
        amount: -amount,
        currency,
    }));
    Transaction::new("checkout_paid", checkout_id, postings)
}

/// A completed order releases the shop's pending funds to available.
pub fn order_completed(
    order_id: &str,
    shop_id: &str,
    amount: i64,
    currency: Currency,
) -> Result<Transaction, DomainError> {
    Transaction::new(
        "order_completed",
        order_id,
        vec![
            Posting {
                account: accounts::shop_pending(shop_id),
                amount,
                currency,
            },
            Posting {
                account: accounts::shop_available(shop_id),
                amount: -amount,
                currency,
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    #[test]
    fn unbalanced_transactions_are_refused() {
        let p = |a: &str, amount| Posting {
            account: a.into(),
            amount,
            currency: eur(),
        };
        assert!(Transaction::new("x", "r", vec![p("a", 10), p("b", -9)]).is_err());
        assert!(Transaction::new("x", "r", vec![p("a", 10)]).is_err());
        assert!(Transaction::new("x", "r", vec![p("a", 10), p("b", -10)]).is_ok());
    }

    proptest! {
        #[test]
        fn captures_always_balance(totals in prop::collection::vec(1i64..1_000_000_000, 1..20)) {
            let shops: Vec<(String, i64)> = totals.iter().enumerate().map(|(i, t)| (format!("shp_{i}"), *t)).collect();
            let tx = checkout_paid("chk_1", eur(), &shops).expect("balanced");
            let sum: i64 = tx.postings().iter().map(|p| p.amount).sum();
            prop_assert_eq!(sum, 0);
        }
    }
}
