//! Id-map computation (pure).
