//! ACL policies (being written).
