//! A well-formed component that is not a prefsync connector.

wit_bindgen::generate!({
    inline: r#"
        package test:other@1.0.0;
        world greeter {
            export greet: func(name: string) -> string;
        }
    "#,
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Greeter);
