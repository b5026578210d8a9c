fn main() {
    println!("xfrm-agent");
}
