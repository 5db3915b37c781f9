"""In-tree ``masq``: source NAT for pod traffic leaving its subnets."""
