# expect: E0042
then answer AAA 192.0.2.1
