"""In-tree ``forward``: accept forwarded traffic to and from the pod."""
