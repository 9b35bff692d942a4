/*
 * lmesdirty: a freestanding 32-bit multiboot guest whose memory dirtying rate is known.
 *
 * Live migration time depends on how fast a guest rewrites memory the hypervisor already sent,
 * so the lab needs guests that dirty memory at a set rate and nothing else.  This kernel writes
 * one word into each 4 KiB page of a dirty set of `mb` MiB, `pages_per_s` pages every second,
 * spread over the second's milliseconds, and reports on the first serial port once a second:
 *
 *   lmesdirty: t=12s pages_dirtied_per_s=5120 total=61440 seq=12 bad=0
 *
 * `t` is guest time, `total` every page written since boot and `seq` the report number; all
 * three live in guest memory, so after a migration they continue where the source left them
 * unless the destination received stale memory.  Each word holds the number of the pass that
 * wrote it, and `bad` counts pages whose previous word was not the previous pass: pages a
 * migration lost.
 *
 * Kernel command line (multiboot), every key optional:
 *   mb=N            size of the dirty set in MiB (default 64)
 *   pages_per_s=N   4 KiB pages to dirty each second (default 5120, i.e. 20 MiB/s)
 *   clock=pit|tsc   pit: sleep in hlt between 1 kHz timer interrupts (near zero host CPU);
 *                   tsc: busy-wait on the time-stamp counter (for hosts where timer
 *                   interrupts misbehave)
 *   tlbflush=0|1    1: run with identity paging and reload CR3 every millisecond, so no write
 *                   goes through a TLB entry older than the hypervisor's last dirty-log sync
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MULTIBOOT_MAGIC 0x1BADB002u
#define MULTIBOOT_FLAGS 0x00000003u /* page-aligned modules, memory information */
#define MULTIBOOT_LOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_INFO_MEMORY 0x1u
#define MULTIBOOT_INFO_CMDLINE 0x4u

#define PAGE_BYTES 4096u
#define WORDS_PER_PAGE (PAGE_BYTES / 4u)
#define DIRTY_BASE 0x400000u /* 4 MiB: above the kernel, its stack and the multiboot data */
#define PIT_HZ 1193182u
#define TICK_HZ 1000u
#define COM1 0x3F8u
#define BILLION 1000000000u

struct multiboot_header {
    u32 magic, flags, checksum;
};

__attribute__((section(".multiboot"), used, aligned(4))) static const struct multiboot_header
    multiboot_header = {MULTIBOOT_MAGIC, MULTIBOOT_FLAGS, -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)};

struct multiboot_info {
    u32 flags, mem_lower_kib, mem_upper_kib, boot_device, cmdline;
};

struct __attribute__((packed)) table_register {
    u16 limit;
    u32 base;
};

struct idt_gate {
    u16 offset_low, selector;
    u8 zero, type_attributes;
    u16 offset_high;
};

u8 boot_stack[16384] __attribute__((aligned(16)));
volatile u32 ticks_ms;

static const u64 gdt[3] = {0, 0x00CF9A000000FFFFull, 0x00CF92000000FFFFull};
static struct idt_gate idt[256];
static u32 page_directory[1024] __attribute__((aligned(4096)));

/* Entry: a stack, then C.  Timer interrupt: count a millisecond and acknowledge the PIC. */
__asm__(".section .text.entry\n"
        ".global _start\n"
        "_start:\n"
        "  cli\n"
        "  mov $boot_stack + 16384, %esp\n"
        "  push %ebx\n"
        "  push %eax\n"
        "  call kernel_main\n"
        "1: cli\n"
        "  hlt\n"
        "  jmp 1b\n"
        ".text\n"
        ".global timer_entry\n"
        "timer_entry:\n"
        "  push %eax\n"
        "  incl ticks_ms\n"
        "  mov $0x20, %al\n"
        "  outb %al, $0x20\n"
        "  pop %eax\n"
        "  iret\n"
        ".global ignored_entry\n"
        "ignored_entry:\n"
        "  iret\n");

void timer_entry(void);
void ignored_entry(void);

static inline void outb(u16 port, u8 value) { __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }

static inline u8 inb(u16 port) {
    u8 value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline u64 rdtsc(void) {
    u32 low, high;
    __asm__ volatile("rdtsc" : "=a"(low), "=d"(high));
    return ((u64)high << 32) | low;
}

static void serial_init(void) {
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* divisor latch */
    outb(COM1 + 0, 0x01); /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xC7); /* FIFO */
    outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void put_char(char c) {
    while (!(inb(COM1 + 5) & 0x20)) {
    }
    outb(COM1, (u8)c);
}

static void put_text(const char *text) {
    while (*text) put_char(*text++);
}

static void put_digits(u32 value, u32 min_digits) {
    char digits[10];
    u32 count = 0;
    do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    while (count < min_digits) digits[count++] = '0';
    while (count) put_char(digits[--count]);
}

static void put_number(u32 value) { put_digits(value, 1); }

/* A 64-bit counter kept as billions and a remainder: 32-bit code has no 64-bit division. */
struct big_counter {
    u32 billions, units;
};

static void big_add(struct big_counter *counter, u32 amount) {
    counter->units += amount;
    while (counter->units >= BILLION) {
        counter->units -= BILLION;
        counter->billions++;
    }
}

static void put_big(const struct big_counter *counter) {
    if (counter->billions) {
        put_number(counter->billions);
        put_digits(counter->units, 9);
    } else {
        put_number(counter->units);
    }
}

static int starts_with(const char *text, const char *prefix) {
    while (*prefix)
        if (*text++ != *prefix++) return 0;
    return 1;
}

static u32 parse_number(const char *text) {
    u32 value = 0;
    while (*text >= '0' && *text <= '9') value = value * 10u + (u32)(*text++ - '0');
    return value;
}

struct settings {
    u32 dirty_mb, pages_per_s, use_tsc, tlb_flush;
};

static void parse_cmdline(const char *text, struct settings *settings) {
    while (*text) {
        while (*text == ' ') text++;
        if (starts_with(text, "mb=")) settings->dirty_mb = parse_number(text + 3);
        else if (starts_with(text, "pages_per_s=")) settings->pages_per_s = parse_number(text + 12);
        else if (starts_with(text, "clock=tsc")) settings->use_tsc = 1;
        else if (starts_with(text, "clock=pit")) settings->use_tsc = 0;
        else if (starts_with(text, "tlbflush=")) settings->tlb_flush = parse_number(text + 9);
        while (*text && *text != ' ') text++;
    }
}

static void load_segments(void) {
    static struct table_register gdtr;
    gdtr.limit = sizeof(gdt) - 1;
    gdtr.base = (u32)gdt;
    __asm__ volatile("lgdt %0\n"
                     "ljmp $0x08, $1f\n"
                     "1: mov $0x10, %%ax\n"
                     "mov %%ax, %%ds\n"
                     "mov %%ax, %%es\n"
                     "mov %%ax, %%fs\n"
                     "mov %%ax, %%gs\n"
                     "mov %%ax, %%ss\n" ::"m"(gdtr)
                     : "eax", "memory");
}

static void set_gate(u32 vector, void (*handler)(void)) {
    u32 address = (u32)handler;
    idt[vector].offset_low = (u16)(address & 0xFFFFu);
    idt[vector].selector = 0x08;
    idt[vector].zero = 0;
    idt[vector].type_attributes = 0x8E; /* present, ring 0, 32-bit interrupt gate */
    idt[vector].offset_high = (u16)(address >> 16);
}

static void load_interrupts(void) {
    static struct table_register idtr;
    for (u32 vector = 0; vector < 256; vector++) set_gate(vector, ignored_entry);
    set_gate(32, timer_entry);
    idtr.limit = sizeof(idt) - 1;
    idtr.base = (u32)idt;
    __asm__ volatile("lidt %0" ::"m"(idtr));
}

/* PIC: IRQs to vectors 32-47, only the timer unmasked.  PIT channel 0: 1 kHz rate generator. */
static void start_timer(void) {
    u32 divisor = (PIT_HZ + TICK_HZ / 2) / TICK_HZ;
    outb(0x20, 0x11);
    outb(0xA0, 0x11);
    outb(0x21, 0x20);
    outb(0xA1, 0x28);
    outb(0x21, 0x04);
    outb(0xA1, 0x02);
    outb(0x21, 0x01);
    outb(0xA1, 0x01);
    outb(0x21, 0xFE);
    outb(0xA1, 0xFF);
    outb(0x43, 0x34);
    outb(0x40, (u8)(divisor & 0xFFu));
    outb(0x40, (u8)(divisor >> 8));
    __asm__ volatile("sti");
}

/* TSC ticks in one millisecond, measured against a 50 ms one-shot of PIT channel 2 (polled). */
static u32 calibrate_tsc_per_ms(void) {
    const u32 window_ms = 50;
    u32 latch = PIT_HZ * window_ms / 1000u;
    outb(0x61, (u8)((inb(0x61) & ~0x02u) | 0x01u));
    outb(0x43, 0xB0);
    outb(0x42, (u8)(latch & 0xFFu));
    outb(0x42, (u8)(latch >> 8));
    u64 start = rdtsc();
    while (!(inb(0x61) & 0x20)) {
    }
    u32 elapsed = (u32)(rdtsc() - start);
    return elapsed / window_ms ? elapsed / window_ms : 1;
}

static void enable_identity_paging(void) {
    for (u32 entry = 0; entry < 1024; entry++)
        page_directory[entry] = (entry << 22) | 0x83u; /* 4 MiB page, present, writable */
    __asm__ volatile("mov %%cr4, %%eax\n"
                     "or $0x10, %%eax\n" /* PSE */
                     "mov %%eax, %%cr4\n"
                     "mov %0, %%cr3\n"
                     "mov %%cr0, %%eax\n"
                     "or $0x80000000, %%eax\n" /* PG */
                     "mov %%eax, %%cr0\n" ::"r"(page_directory)
                     : "eax", "memory");
}

static inline void flush_tlb(void) {
    __asm__ volatile("mov %%cr3, %%eax\n"
                     "mov %%eax, %%cr3\n" ::
                         : "eax", "memory");
}

/* Guest milliseconds since boot, from the timer interrupt count or from the TSC. */
struct clock {
    int use_tsc;
    u32 tsc_per_ms, now_ms;
    u64 last_tsc;
};

static u32 clock_now_ms(struct clock *clock) {
    if (!clock->use_tsc) return ticks_ms;
    u64 now = rdtsc();
    while ((u32)(now - clock->last_tsc) >= clock->tsc_per_ms) {
        clock->last_tsc += clock->tsc_per_ms;
        clock->now_ms++;
    }
    return clock->now_ms;
}

static void report(u32 t_s, u32 pages_this_second, const struct big_counter *total, u32 seq,
                   u32 bad_pages) {
    put_text("lmesdirty: t=");
    put_number(t_s);
    put_text("s pages_dirtied_per_s=");
    put_number(pages_this_second);
    put_text(" total=");
    put_big(total);
    put_text(" seq=");
    put_number(seq);
    put_text(" bad=");
    put_number(bad_pages);
    put_text("\n");
}

void kernel_main(u32 loader_magic, const struct multiboot_info *info) {
    struct settings settings = {64, 5120, 0, 1};
    u32 memory_end = 0;

    load_segments();
    serial_init();
    if (loader_magic == MULTIBOOT_LOADER_MAGIC) {
        if (info->flags & MULTIBOOT_INFO_CMDLINE)
            parse_cmdline((const char *)info->cmdline, &settings);
        if (info->flags & MULTIBOOT_INFO_MEMORY) memory_end = 0x100000u + info->mem_upper_kib * 1024u;
    }

    u32 dirty_pages = settings.dirty_mb * (0x100000u / PAGE_BYTES);
    if (memory_end <= DIRTY_BASE) dirty_pages = 0;
    else if (dirty_pages > (memory_end - DIRTY_BASE) / PAGE_BYTES)
        dirty_pages = (memory_end - DIRTY_BASE) / PAGE_BYTES;
    if (dirty_pages == 0) settings.pages_per_s = 0;
    /* pages_per_s * 999 must fit in 32 bits */
    if (settings.pages_per_s > 4000000u) settings.pages_per_s = 4000000u;

    struct clock clock = {(int)settings.use_tsc, 1, 0, 0};
    if (settings.use_tsc) clock.tsc_per_ms = calibrate_tsc_per_ms();
    load_interrupts();
    if (settings.tlb_flush) enable_identity_paging();
    if (!settings.use_tsc) start_timer();
    clock.last_tsc = rdtsc();

    put_text("lmesdirty: boot dirty_pages=");
    put_number(dirty_pages);
    put_text(" pages_per_s=");
    put_number(settings.pages_per_s);
    put_text(settings.use_tsc ? " clock=tsc" : " clock=pit");
    put_text(settings.tlb_flush ? " tlbflush=1\n" : " tlbflush=0\n");

    volatile u32 *dirty_set = (volatile u32 *)DIRTY_BASE;
    struct big_counter total = {0, 0};
    u32 next_page = 0, pass = 1, bad_pages = 0, seq = 0;
    u32 current_second = 0, done_this_second = 0;

    for (;;) {
        u32 now_ms = clock_now_ms(&clock);
        u32 second = now_ms / 1000u;
        int second_ended = second != current_second;
        u32 due = second_ended ? settings.pages_per_s
                               : settings.pages_per_s * (now_ms % 1000u) / 1000u;
        if (settings.tlb_flush) flush_tlb();
        while (done_this_second < due) {
            volatile u32 *word = dirty_set + next_page * WORDS_PER_PAGE;
            if (pass > 1 && *word != pass - 1) bad_pages++;
            *word = pass;
            done_this_second++;
            big_add(&total, 1);
            if (++next_page == dirty_pages) {
                next_page = 0;
                pass++;
            }
        }
        if (second_ended) {
            seq++;
            report(second, done_this_second, &total, seq, bad_pages);
            current_second = second;
            done_this_second = 0;
        } else if (!settings.use_tsc) {
            __asm__ volatile("hlt");
        }
    }
}
