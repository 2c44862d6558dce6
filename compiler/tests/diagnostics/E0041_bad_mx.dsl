# expect: E0041
then answer MX "mail.example.com"
