"""The in-tree ``bridge`` interface plugin: a Linux bridge plus one veth pair per pod."""
