//! Products and their variants. A product has up to three option names (e.g. Colour, Size);
//! each variant picks one value per option and carries its own price, stock and SKU.

use crate::DomainError;
use crate::error::Errors;
use crate::money::{Currency, MAX_MINOR, Money};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub const MAX_OPTIONS: usize = 3;
pub const MAX_VARIANTS: usize = 100;
pub const MAX_STOCK: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Draft,
    Live,
    Deactivated,
}

impl ProductStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Live => "live",
            Self::Deactivated => "deactivated",
        }
    }
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "draft" => Ok(Self::Draft),
            "live" => Ok(Self::Live),
            "deactivated" => Ok(Self::Deactivated),
            _ => Err(DomainError::Conflict(format!("unknown product status {s}"))),
        }
    }
}

/// Publishing: a draft or deactivated product goes live, but only for a shop that may sell.
pub fn publish(current: ProductStatus, shop_can_sell: bool) -> Result<ProductStatus, DomainError> {
    if !shop_can_sell {
        return Err(DomainError::Forbidden(
            "the shop is not active, so it cannot publish products",
        ));
    }
    match current {
        ProductStatus::Draft | ProductStatus::Deactivated => Ok(ProductStatus::Live),
        ProductStatus::Live => Err(DomainError::Conflict("the product is already live".into())),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    /// One value per option name, in the order of `options`.
    #[serde(default)]
    pub option_values: Vec<String>,
    /// Price in minor units of the shop's currency.
    pub price: i64,
    pub stock: i64,
    #[serde(default)]
    pub sku: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Option names such as ["Colour", "Size"]; empty for a product without options.
    #[serde(default)]
    pub options: Vec<String>,
    pub variants: Vec<VariantInput>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub option_values: Vec<String>,
    pub price: Money,
    pub stock: i64,
    pub sku: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub title: String,
    pub description: String,
    pub options: Vec<String>,
    pub variants: Vec<Variant>,
}

fn text(errors: &mut Errors, field: &str, value: &str, min: usize, max: usize) -> String {
    let v = value.trim();
    let n = v.chars().count();
    if n < min {
        errors.add(
            field,
            if min <= 1 {
                "required".into()
            } else {
                format!("at least {min} characters")
            },
        );
    } else if n > max {
        errors.add(field, format!("at most {max} characters"));
    } else if v
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.add(field, "contains control characters");
    }
    v.to_string()
}

impl ProductInput {
    /// Validates the whole product at once, so the seller sees every problem together.
    pub fn parse(&self, currency: Currency) -> Result<Product, DomainError> {
        let mut e = Errors::new();
        let title = text(&mut e, "title", &self.title, 2, 255);
        let description = text(&mut e, "description", &self.description, 0, 10_000);
        if self.options.len() > MAX_OPTIONS {
            e.add("options", format!("at most {MAX_OPTIONS} options"));
        }
        let options: Vec<String> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| text(&mut e, &format!("options[{i}]"), o, 1, 30))
            .collect();
        let distinct: HashSet<String> = options.iter().map(|o| o.to_lowercase()).collect();
        if distinct.len() != options.len() {
            e.add("options", "option names must differ");
        }
        if self.variants.is_empty() {
            e.add("variants", "add at least one variant");
        } else if self.variants.len() > MAX_VARIANTS {
            e.add("variants", format!("at most {MAX_VARIANTS} variants"));
        }
        let mut combos = HashSet::new();
        let mut skus = HashSet::new();
        let mut variants = Vec::with_capacity(self.variants.len());
        for (i, v) in self.variants.iter().enumerate() {
            let f = |name: &str| format!("variants[{i}].{name}");
            if v.option_values.len() != options.len() {
                e.add(
                    f("option_values"),
                    format!("give one value for each of the {} options", options.len()),
                );
            }
            let values: Vec<String> = v
                .option_values
                .iter()
                .map(|val| text(&mut e, &f("option_values"), val, 1, 50))
                .collect();
            if !combos.insert(values.iter().map(|x| x.to_lowercase()).collect::<Vec<_>>()) {
                e.add(
                    f("option_values"),
                    "another variant has the same option values",
                );
            }
            if !(1..=MAX_MINOR).contains(&v.price) {
                e.add(f("price"), "price must be positive");
            }
            if !(0..=MAX_STOCK).contains(&v.stock) {
                e.add(
                    f("stock"),
                    format!("stock must be between 0 and {MAX_STOCK}"),
                );
            }
            let sku = text(&mut e, &f("sku"), &v.sku, 0, 50);
            if !sku.is_empty() && !skus.insert(sku.clone()) {
                e.add(f("sku"), "SKUs must be unique within the product");
            }
            variants.push(Variant {
                option_values: values,
                price: Money {
                    minor: v.price,
                    currency,
                },
                stock: v.stock,
                sku,
            });
        }
        e.finish()?;
        Ok(Product {
            title,
            description,
            options,
            variants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn shirt() -> ProductInput {
        ProductInput {
            title: "Linen shirt".into(),
            description: "Breathable.".into(),
            options: vec!["Colour".into(), "Size".into()],
            variants: vec![
                VariantInput {
                    option_values: vec!["White".into(), "M".into()],
                    price: 3900,
                    stock: 5,
                    sku: "LS-W-M".into(),
                },
                VariantInput {
                    option_values: vec!["White".into(), "L".into()],
                    price: 3900,
                    stock: 0,
                    sku: "LS-W-L".into(),
                },
            ],
        }
    }

    #[test]
    fn a_product_with_variants_parses() {
        let p = shirt().parse(eur()).expect("valid");
        assert_eq!(p.variants.len(), 2);
        assert_eq!(p.variants[0].price.minor, 3900);
    }

    #[test]
    fn bad_variants_are_each_reported() {
        let mut p = shirt();
        p.variants[1].option_values = vec!["white".into(), "m".into()];
        p.variants[1].sku = "LS-W-M".into();
        p.variants[0].price = 0;
        p.variants[0].stock = -1;
        let Err(DomainError::Invalid(errs)) = p.parse(eur()) else {
            panic!("expected invalid")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "variants[0].price",
                "variants[0].stock",
                "variants[1].option_values",
                "variants[1].sku"
            ]
        );
    }

    #[test]
    fn only_active_shops_publish() {
        assert!(publish(ProductStatus::Draft, false).is_err());
        assert_eq!(publish(ProductStatus::Draft, true), Ok(ProductStatus::Live));
        assert!(publish(ProductStatus::Live, true).is_err());
    }
}
