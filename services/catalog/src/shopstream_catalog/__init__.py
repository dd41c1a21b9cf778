"""The catalog service: brands, products with their SKUs and list prices, and the stock of every
SKU — reserved exactly once per order, never below zero, flash-deal allocations respected."""
