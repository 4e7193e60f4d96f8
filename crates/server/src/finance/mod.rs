//! Finance: the ledger every amount goes through. Balances are sums of postings.

pub mod ledger;
