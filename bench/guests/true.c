/* true: does nothing and returns 0; measures start-up and tear-down time. */
int main(void) { return 0; }
